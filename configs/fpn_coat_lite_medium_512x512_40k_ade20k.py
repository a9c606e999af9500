# Semantic FPN, CoaT-Lite Medium, ADE20K 512x512, 40k iterations, 8 GPUs x 4 images.
# UNTESTED EXTRA: the recipe of the four main variants (lite_mini, lite_small, mini, small)
# applied to CoaT-Lite Medium; never trained, no reference result to compare with.
_base_ = './_base_/fpn_coat_ade20k.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='lite_medium',
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_lite_medium.in1k')),
    neck=dict(in_channels=[128, 256, 320, 512]))
