# The official CoaT detection optimisation recipe, 1x: AdamW (lr 1e-4, betas (0.9, 0.999),
# weight decay 0.05 on every parameter) in mixed precision with a dynamic loss scale, linear warmup
# over 500 iterations from 0.001 x lr, 12 epochs with the lr divided by 10 after epochs 8 and 11.
# The lr is for 8 GPUs x 2 images; auto_scale_lr (off, as in the recipe) rescales it for other
# batch sizes when enabled (tools/train.py --auto-scale-lr).
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # CoaT shares modules between blocks (per-scale CPE/CRPE, the parallel blocks' MLP): with any
    # paramwise option, mmengine's optimizer constructor would otherwise reject the shared
    # parameters as "in more than one parameter group". No multipliers are set: the official
    # recipe decays every parameter.
    paramwise_cfg=dict(bypass_duplicate=True))
auto_scale_lr = dict(enable=False, base_batch_size=16)
