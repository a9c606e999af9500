# Cascade Mask R-CNN + FPN with a CoaT backbone, with the official CoaT cascade heads: each of
# the three stages is a 4conv1fc box head (Shared4Conv1FCBBoxHead) with SyncBN, class-specific
# regression of decoded boxes trained with GIoU loss (weight 10). The rest is mmdet's Cascade Mask
# R-CNN on the CoaT COCO data recipe. A config built on this sets the variant and a schedule.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    './coat_coco_instance.py',
]
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)


def _stage(target_stds):
    return dict(
        type='Shared4Conv1FCBBoxHead',
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=target_stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='CoaT',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0,
        frozen_stages=-1,
        with_cp=False),
    roi_head=dict(bbox_head=[
        _stage([0.1, 0.1, 0.2, 0.2]),
        _stage([0.05, 0.05, 0.1, 0.1]),
        _stage([0.033, 0.033, 0.067, 0.067]),
    ]))
