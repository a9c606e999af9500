# Deformable DETR (single stage, no box refinement), CoaT Small, 50 epochs, COCO.
# Paper (COCO val2017, AP / AP50 / AP75 / APS / APM / APL): 48.4 / 68.5 / 52.4 / 30.1 / 51.8 / 63.8.
_base_ = './_base_/deformable_detr_coat.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_small.in1k')),
    neck=dict(in_channels=[320, 320, 320]))
