# Semantic FPN, CoaT Tiny, ADE20K 512x512, 40k iterations, 8 GPUs x 4 images.
# UNTESTED EXTRA: the recipe of the four main variants (lite_mini, lite_small, mini, small)
# applied to CoaT Tiny; never trained, no reference result to compare with.
_base_ = './_base_/fpn_coat_ade20k.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_tiny.in1k')),
    neck=dict(in_channels=[152, 152, 152, 152]))
