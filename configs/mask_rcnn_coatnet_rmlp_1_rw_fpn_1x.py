# Mask R-CNN + FPN, CoAtNet-RMLP-1 (timm coatnet_rmlp_1_rw, 41.7M parameters, ImageNet top-1 83.4),
# 1x (12 epochs, lr / 10 after epochs 8 and 11), COCO. Not trained yet. The recipe of the
# CoAtNet-0 config (mmdet's Swin-T recipe), with this variant's weights.
_base_ = './mask_rcnn_coatnet_0_rw_fpn_1x.py'

# Attention: windows of 14x14 (the pretrained grid) at stride 16, the last of its 14 blocks global,
# stride 32 global. Its forward+backward at 800x1344, batch 2, fp32 needs 16.1 GiB in this mode
# without checkpointing, more than a 16 GiB card holds, so the blocks are checkpointed
# (with_cp=True): 5.7 GiB (docs/coatnet.md, measured by tools/benchmark.py).
model = dict(
    backbone=dict(
        arch='coatnet_rmlp_1_rw',
        global_blocks=(13, ),
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coatnet_rmlp_1_rw_224.sw_in1k')))
