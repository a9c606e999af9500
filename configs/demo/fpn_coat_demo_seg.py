# Semantic FPN with a small CoaT trained from scratch on the synthetic segmentation shapes
# (coat_backbone.datasets.generate_seg_shapes): background, striped circles, checked squares and
# plain triangles on textured backgrounds. Sized to learn within minutes on a 2-core CPU: 128-pixel
# images, a CoaT-Lite-style backbone (no parallel blocks), a 32-channel FPN and head. Run it through
# tools/run_demo_seg.sh, which generates the data first; a GPU is used when present.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/default_runtime.py',
]
# coat_backbone.datasets.seg_dataset registers the dataset class (it needs mmseg, so it is not
# imported by coat_backbone itself).
custom_imports = dict(imports=['coat_backbone', 'coat_backbone.datasets.seg_dataset'],
                      allow_failed_imports=False)

# Read by tools/demo_seg_synthetic.py: the dataset is generated into data_root with these arguments
# (keys of coat_backbone.datasets.SegShapesArgs). Larger shapes than the detection demo's, so that
# about a quarter of the pixels belong to shapes.
img_size = 128
synthetic_data = dict(num_train=400, num_val=100, img_size=img_size, max_objects=5,
                      min_radius=10.0, max_radius=28.0, seed=0)
data_root = 'data/synthetic_seg/'
num_classes = 4  # coat_backbone.datasets.shapes.SEG_CLASSES
embed_dims = [32, 64, 128, 160]
fpn_channels = 32

model = dict(
    data_preprocessor=dict(size=(img_size, img_size)),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='CoaT',
        arch=dict(embed_dims=embed_dims, serial_depths=[1, 1, 1, 1], parallel_depth=0,
                  num_heads=8, mlp_ratios=[4, 4, 4, 4]),
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(in_channels=embed_dims, out_channels=fpn_channels),
    decode_head=dict(in_channels=[fpn_channels] * 4, channels=fpn_channels,
                     num_classes=num_classes),
    test_cfg=dict(mode='whole'))

dataset_type = 'SyntheticShapesSegDataset'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 2000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# AdamW with the CoaT ADE20K recipe's parameter groups (no weight decay on norms and class tokens;
# bypass_duplicate for CoaT's shared modules), a from-scratch lr, a short warm-up and poly decay.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(bypass_duplicate=True,
                       custom_keys={'norm': dict(decay_mult=0.0),
                                    'cls_token': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50, end=max_iters),
]
auto_scale_lr = dict(enable=False, base_batch_size=8)

# mmseg's default_runtime has no hooks (its schedules add them): the full set, as in its schedules.
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [dict(type='NonFiniteLossHook')]
log_processor = dict(window_size=20)
randomness = dict(seed=0)
