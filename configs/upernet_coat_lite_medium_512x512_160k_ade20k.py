# UperNet, CoaT-Lite Medium, ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
# UNTESTED EXTRA: the recipe of the four main variants (lite_mini, lite_small, mini, small)
# applied to CoaT-Lite Medium; never trained, no reference result to compare with.
_base_ = './_base_/upernet_coat_ade20k.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='lite_medium',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_lite_medium.in1k')),
    decode_head=dict(in_channels=[128, 256, 320, 512]),
    auxiliary_head=dict(in_channels=320))
