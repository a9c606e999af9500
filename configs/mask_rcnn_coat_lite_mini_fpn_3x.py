# Mask R-CNN + FPN, CoaT-Lite Mini, 3x (36 epochs), COCO.
# Paper (COCO val2017, box AP / mask AP): 42.9 / 38.9.
_base_ = ['./_base_/mask_rcnn_coat_fpn.py', './_base_/coat_adamw_3x.py']
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='lite_mini',
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_lite_mini.in1k')),
    neck=dict(in_channels=[64, 128, 320, 512]))
