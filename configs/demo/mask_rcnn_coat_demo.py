# Mask R-CNN with a small CoaT trained from scratch on the synthetic shapes dataset
# (coat_backbone.datasets.generate_coco_shapes). Sized to learn within minutes on a 2-core CPU:
# 128-pixel images, a CoaT-Lite-style backbone (no parallel blocks), 64-channel FPN and slim heads.
# Run it through tools/run_demo.sh, which generates the data first; a GPU is used when present.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

# Read by tools/demo_synthetic.py: the dataset is generated into data_root with these arguments
# (keys of coat_backbone.datasets.shapes.CocoShapesArgs).
img_size = 128
synthetic_data = dict(num_train=400, num_val=100, img_size=img_size, max_objects=4,
                      min_radius=8.0, max_radius=24.0, seed=0)
data_root = 'data/synthetic_coco/'
# The generator's classes, in the order of coat_backbone.datasets.shapes.SHAPE_CLASSES.
metainfo = dict(classes=('circle', 'square', 'triangle'),
                palette=[(220, 20, 60), (0, 160, 80), (30, 90, 255)])
num_classes = 3
embed_dims = [32, 64, 128, 160]
fpn_channels = 64

model = dict(
    backbone=dict(
        _delete_=True,
        type='CoaT',
        arch=dict(embed_dims=embed_dims, serial_depths=[1, 1, 1, 1], parallel_depth=0,
                  num_heads=8, mlp_ratios=[4, 4, 4, 4]),
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(in_channels=embed_dims, out_channels=fpn_channels),
    rpn_head=dict(
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        # Shapes are 16-64 pixels wide: anchors of 16 px at stride 4 up to 256 px at stride 64.
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        # One bilinear sample per RoIAlign bin: the shapes' RoIs are small (16-64 pixels on the
        # stride-4 level), and mmcv's CPU RoIAlign is the costliest op of a training step.
        bbox_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=1), out_channels=fpn_channels),
        bbox_head=dict(in_channels=fpn_channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=1), out_channels=fpn_channels),
        mask_head=dict(num_convs=2, in_channels=fpn_channels, conv_out_channels=32,
                       num_classes=num_classes)),
    # Images hold 1-4 objects: far fewer anchors, proposals and RoIs than COCO's defaults suffice,
    # and RoIAlign, NMS and the mask head dominate the CPU time otherwise.
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(max_per_img=20)))

# Images are generated at their final size: the no-op Resize only records scale_factor.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=0), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_epochs = 16
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
# AdamW as in the official CoaT detection recipe, with a 10x higher rate for training from
# scratch: one epoch of linear warm-up, then cosine decay.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    # Weight decay on all parameters, as the official recipe.
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, T_max=max_epochs - 1,
         eta_min_ratio=0.02, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=8)

default_hooks = dict(
    # log_metric_by_epoch=False puts validation metrics on the iteration axis of the losses,
    # which the training-curve plot relies on.
    logger=dict(interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='AtomicCheckpointHook', interval=max_epochs, max_keep_ckpts=1))
log_processor = dict(window_size=10)
randomness = dict(seed=0)
