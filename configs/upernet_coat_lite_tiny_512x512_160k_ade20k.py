# UperNet, CoaT-Lite Tiny, ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
# UNTESTED EXTRA: the recipe of the four main variants (lite_mini, lite_small, mini, small)
# applied to CoaT-Lite Tiny; never trained, no reference result to compare with.
_base_ = './_base_/upernet_coat_ade20k.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='lite_tiny',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_lite_tiny.in1k')),
    decode_head=dict(in_channels=[64, 128, 256, 320]),
    auxiliary_head=dict(in_channels=256))
