# ImageNet-1k pretraining of CoaT with the official recipe (the DeiT recipe, as the CoaT repository
# runs it: scripts/train.sh, 8 GPUs x 256 images): 300 epochs, RandAugment rand-m9-mstd0.5-inc1,
# Mixup 0.8 / CutMix 1.0, label smoothing 0.1, random erasing 0.25, repeated augmentation (3
# copies), AdamW (eps 1e-8, weight decay 0.05, none on biases, norms and class tokens) at
# lr 5e-4 x total batch / 512, 5 warm-up epochs then cosine to 1e-5, EMA of the weights (decay
# 0.99996), mixed precision. A config built on this sets model.backbone.arch and its overrides.
#
# Differences from the official code, all small: the lr follows the schedule every iteration
# (timm stepped it once per epoch); the warm-up starts at lr x 1e-3 (officially 1e-6 absolute)
# and the cosine spans the epochs after it; validation (every 10 epochs, like the official
# checkpoints) measures the EMA weights, which are also the `state_dict` of the checkpoints
# (the raw weights are kept under `ema_state_dict`; tools/eval_cls.py --raw-weights reads them).
#
# Data: ImageNet in class folders, data/imagenet/{train,val}/<wnid>/*.JPEG.
custom_imports = dict(
    imports=['coat_backbone', 'coat_backbone.engine', 'coat_backbone.classification'],
    allow_failed_imports=False)
default_scope = 'mmengine'

data_root = 'data/imagenet/'
num_classes = 1000
img_size = 224
# Keyword arguments of timm.data.create_transform.
train_transform = dict(
    input_size=img_size,
    is_training=True,
    auto_augment='rand-m9-mstd0.5-inc1',
    interpolation='bicubic',
    color_jitter=0.4,  # timm skips it when RandAugment is on, as in the official run
    re_prob=0.25,
    re_mode='pixel',
    re_count=1)
# The official evaluation: bicubic resize of the short side to 256, centre crop 224.
test_transform = dict(input_size=img_size, interpolation='bicubic', crop_pct=0.875,
                      crop_mode='center')

train_dataloader = dict(
    batch_size=256,  # per GPU; the recipe's total batch is 8 x 256 = 2048
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,  # Mixup needs even batches
    sampler=dict(type='RepeatAugSampler', num_repeats=3, shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolderDataset', root=data_root + 'train', transform=train_transform,
                 num_classes=num_classes))
val_dataloader = dict(
    batch_size=384,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolderDataset', root=data_root + 'val', transform=test_transform,
                 num_classes=num_classes))
test_dataloader = val_dataloader
val_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
test_evaluator = val_evaluator

model = dict(
    type='CoaTImageClassifier',
    backbone=dict(type='CoaTClassifier', num_classes=num_classes, drop_rate=0.0,
                  drop_path_rate=0.0),
    mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode='batch'),
    label_smoothing=0.1)

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    # No decay on 1-D parameters (biases, LayerNorms) and class tokens, as timm's optimizer
    # factory does for the official run. bypass_duplicate: CoaT shares its CPE/CRPE modules (and
    # the parallel blocks' MLP) between blocks, so the constructor meets those parameters twice.
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'cls_token': dict(decay_mult=0.0)}, bypass_duplicate=True))
# lr = 5e-4 x (GPUs x batch per GPU) / 512, the official linear scaling (always on).
auto_scale_lr = dict(enable=True, base_batch_size=512)

max_epochs = 300
warmup_epochs = 5
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-5, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='accuracy/top1', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    # mmengine's momentum is the weight of the new value: 1 - 0.99996.
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=4e-5),
]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(window_size=100, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
# Each process draws its own augmentations and drop-path masks, as in the official run.
randomness = dict(seed=0, diff_rank_seed=True)
