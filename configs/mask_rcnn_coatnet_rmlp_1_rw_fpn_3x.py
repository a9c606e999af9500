# Mask R-CNN + FPN, CoAtNet-RMLP-1 (timm coatnet_rmlp_1_rw, 41.7M parameters, ImageNet top-1 83.4),
# 3x (36 epochs, lr / 10 after epochs 27 and 33), COCO. Not trained yet. The recipe of the
# CoAtNet-0 config (mmdet's Swin-T 3x recipe), with this variant's weights; attention and
# checkpointing as in mask_rcnn_coatnet_rmlp_1_rw_fpn_1x.py (16.1 GiB without checkpointing, 5.7
# GiB with it, at 800x1344, batch 2).
_base_ = './mask_rcnn_coatnet_0_rw_fpn_3x.py'

model = dict(
    backbone=dict(
        arch='coatnet_rmlp_1_rw',
        global_blocks=(13, ),
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coatnet_rmlp_1_rw_224.sw_in1k')))
