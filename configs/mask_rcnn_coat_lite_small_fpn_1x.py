# Mask R-CNN + FPN, CoaT-Lite Small, 1x (12 epochs), COCO.
# Paper (COCO val2017, box AP / mask AP): 45.2 / 40.7.
_base_ = ['./_base_/mask_rcnn_coat_fpn.py', './_base_/coat_adamw_1x.py']
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='lite_small',
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_lite_small.in1k')),
    neck=dict(in_channels=[64, 128, 320, 512]))
