# COCO instance segmentation data and runtime shared by the CoaT Mask R-CNN and Cascade Mask R-CNN
# configs: the official CoaT recipe's DETR-style multi-scale + random-crop training augmentation
# (used for the 1x and the 3x schedules alike), single-scale 1333x800 testing (mmdet's default),
# 8 GPUs x 2 images, and the coat_backbone hooks: atomic checkpoints and a stop on non-finite loss.
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

# Short side 480-800 (step 32), long side at most 1333.
multi_scales = [(s, 1333) for s in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize',
                     scales=[(400, 1333), (500, 1333), (600, 1333)],
                     keep_ratio=True),
                dict(type='RandomCrop',
                     crop_type='absolute_range',
                     crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
# 2 images per GPU; the recipe's total batch is 8 GPUs x 2 = 16 (see auto_scale_lr).
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1))
custom_hooks = [dict(type='NonFiniteLossHook')]
