# CoAtNet-0 (timm's coatnet_0_rw), ImageNet-1k, on this project's ImageNet recipe (the DeiT recipe
# of _base_/coat_in1k.py: 300 epochs, AdamW lr 5e-4 x batch / 512, RandAugment, Mixup / CutMix,
# EMA, 8 GPUs x 256 images). timm does not publish the hyper-parameters of its CoAtNet runs (its
# weights: 82.4 top-1, hf-hub:timm/coatnet_0_rw_224.sw_in1k); inputs are normalised and evaluated
# as timm's weights were (mean = std = 0.5, centre crop of 95%), so that a checkpoint of this run
# and timm's weights are interchangeable in the detection and segmentation configs.
_base_ = './_base_/coat_in1k.py'

model = dict(backbone=dict(type='CoAtNetClassifier', arch='coatnet_0_rw'))
normalisation = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
train_dataloader = dict(dataset=dict(transform=normalisation))
val_dataloader = dict(dataset=dict(transform=dict(crop_pct=0.95, **normalisation)))
test_dataloader = val_dataloader
# No weight decay on the relative position terms either, as timm's no_weight_decay.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'relative_position_bias_table': dict(decay_mult=0.0),
    'rel_pos.mlp': dict(decay_mult=0.0)}))
