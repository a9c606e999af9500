# Mask R-CNN + FPN, CoaT Small, 3x (36 epochs), COCO.
# Paper (COCO val2017, box AP / mask AP): 49.0 / 43.7.
_base_ = ['./_base_/mask_rcnn_coat_fpn.py', './_base_/coat_adamw_3x.py']
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_small.in1k')),
    neck=dict(in_channels=[152, 320, 320, 320]))
