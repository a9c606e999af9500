# Semantic FPN, CoaT-Lite Small, ADE20K 512x512, 40k iterations, 8 GPUs x 4 images.
# Not trained yet: no CoaT segmentation result is published; the README lists published
# ADE20K mIoU of similar-size backbones as context.
_base_ = './_base_/fpn_coat_ade20k.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='lite_small',
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_lite_small.in1k')),
    neck=dict(in_channels=[64, 128, 320, 512]))
