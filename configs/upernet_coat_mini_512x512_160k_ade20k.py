# UperNet, CoaT Mini, ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
# Not trained yet: no CoaT segmentation result is published; the README lists published
# ADE20K mIoU of similar-size backbones as context.
_base_ = './_base_/upernet_coat_ade20k.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='mini',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_mini.in1k')),
    decode_head=dict(in_channels=[152, 216, 216, 216]),
    auxiliary_head=dict(in_channels=216))
