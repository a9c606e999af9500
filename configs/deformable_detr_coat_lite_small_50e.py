# Deformable DETR (single stage, no box refinement), CoaT-Lite Small, 50 epochs, COCO.
# Paper (COCO val2017, AP / AP50 / AP75 / APS / APM / APL): 47.0 / 66.5 / 51.2 / 28.8 / 50.3 / 63.3.
_base_ = './_base_/deformable_detr_coat.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='lite_small',
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_lite_small.in1k')),
    neck=dict(in_channels=[128, 320, 512]))
