# The official recipe's changes for its two largest runs, CoaT Small and CoaT-Lite Medium
# (README of mlpc-ucsd/CoaT, "Training command for CoaT Small / CoaT-Lite Medium"): 128 images per
# GPU (8 x 128 = 1024 in all, lr 1e-3 after scaling), no EMA, 20 warm-up epochs, gradient norm
# clipped to 5.0. The configs on this set the arch and drop path rate.
_base_ = './coat_in1k.py'

train_dataloader = dict(batch_size=128)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0, norm_type=2))
custom_hooks = [dict(type='NonFiniteLossHook')]  # no EMAHook

max_epochs = 300
warmup_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-5, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
