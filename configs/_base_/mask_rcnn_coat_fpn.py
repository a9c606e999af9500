# Mask R-CNN + FPN with a CoaT backbone (mmdet's Mask R-CNN, the ResNet swapped for CoaT) on the
# CoaT COCO data recipe. A config built on this sets the variant: backbone arch, its ImageNet
# checkpoint, drop_path_rate, and neck in_channels = the variant's embed_dims; plus a schedule base.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './coat_coco_instance.py',
]
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    # Padding to 32 keeps every CoaT scale's grid exact (strides 4-32).
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='CoaT',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0,
        frozen_stages=-1,
        with_cp=False))
