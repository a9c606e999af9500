# Mask R-CNN + FPN, CoaT Mini, 3x (36 epochs), COCO.
# Paper (COCO val2017, box AP / mask AP): 46.5 / 41.8.
_base_ = ['./_base_/mask_rcnn_coat_fpn.py', './_base_/coat_adamw_3x.py']
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='mini',
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_mini.in1k')),
    neck=dict(in_channels=[152, 216, 216, 216]))
