# The official CoaT detection optimisation recipe, 3x: as coat_adamw_1x.py (AdamW, AMP, 500-iter
# warmup) over 36 epochs with the lr divided by 10 after epochs 27 and 33.
_base_ = './coat_adamw_1x.py'

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]
