# Mask R-CNN + FPN, CoaT Tiny, 3x (36 epochs), COCO.
# NO PUBLISHED RESULT: the CoaT authors released no detector for CoaT Tiny; this config
# applies the published variants' recipe (drop path 0, as for every variant but Small)
# and has never been trained to a reported accuracy.
_base_ = ['./_base_/mask_rcnn_coat_fpn.py', './_base_/coat_adamw_3x.py']
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_tiny.in1k')),
    neck=dict(in_channels=[152, 152, 152, 152]))
