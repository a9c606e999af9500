# Mask R-CNN + FPN, CoAtNet-0 (timm coatnet_0_rw, 27.4M parameters, ImageNet top-1 82.4), 3x (36
# epochs, lr / 10 after epochs 27 and 33), COCO. Not trained yet.
# No CoAtNet detection recipe is published: this is mmdet's Swin-T recipe
# (swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py: AdamW lr 1e-4, weight decay 0.05 except on
# norms and relative position terms, 1000-iteration warm-up, DETR-style multi-scale and random-crop
# training, drop path 0.2, 8 GPUs x 2 images) with CoAtNet in place of Swin-T and timm's ImageNet
# weights.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

# Attention: windows of 14x14 (the pretrained grid, where the learned bias table is exact) at
# stride 16, the last of its 7 blocks global, stride 32 global. Global attention everywhere needs
# 19.8 GiB for this backbone's forward+backward at 800x1344, batch 2, fp32, more than a 16 GiB card
# holds; this mode needs 11.6 GiB (docs/coatnet.md, measured by tools/benchmark.py). with_cp=True
# brings it to 5.5 GiB, 5% slower on the 2-core CPU.
model = dict(
    # timm trained the weights on images normalised with mean = std = 0.5 (in 0-255 units: 127.5).
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(
        _delete_=True,
        type='CoAtNet',
        arch='coatnet_0_rw',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        attention='window',
        global_blocks=(6, ),
        with_cp=False,
        # The MBConv stages' BatchNorm keeps its ImageNet statistics: 2 images per GPU are too few
        # to estimate them, as in mmdet's ResNet recipes.
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coatnet_0_rw_224.sw_in1k')),
    neck=dict(in_channels=[96, 192, 384, 768]))
# As timm's no_weight_decay: no decay on the rmlp variants' relative-position MLP either.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'rel_pos.mlp': dict(decay_mult=0.0)}))

# coat_backbone's hooks: checkpoints written atomically, and a stop at the first non-finite loss.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1))
custom_hooks = [dict(type='NonFiniteLossHook')]
