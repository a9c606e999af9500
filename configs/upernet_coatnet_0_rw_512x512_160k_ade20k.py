# UperNet, CoAtNet-0 (timm coatnet_0_rw, 27.4M parameters, ImageNet top-1 82.4), ADE20K 512x512,
# 160k iterations, 8 GPUs x 2 images. Not trained yet.
# No CoAtNet segmentation recipe is published: this is mmseg's Swin-T UperNet recipe
# (swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py: AdamW lr 6e-5, weight
# decay 0.01 except on norms and relative position terms, 1500-iteration warm-up then linear decay,
# drop path 0.3) with CoAtNet in place of Swin-T and timm's ImageNet weights.
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

# Attention: global, as the pretrained model. At 512x512 the stride-16 map is 32x32 (1024 tokens):
# this backbone's forward+backward, batch 2, fp32, needs 2.4 GiB (docs/coatnet.md). Test images
# (short side 512, whole-image inference) of any size are zero-padded inside the backbone to
# multiples of 32.
model = dict(
    # timm trained the weights on images normalised with mean = std = 0.5 (in 0-255 units: 127.5).
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(
        _delete_=True,
        type='CoAtNet',
        arch='coatnet_0_rw',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.3,
        attention='global',
        with_cp=False,
        # The MBConv stages' BatchNorm keeps its ImageNet statistics: 2 images per GPU are too few
        # to estimate them.
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coatnet_0_rw_224.sw_in1k')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
# As timm's no_weight_decay: no decay on the rmlp variants' relative-position MLP either.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'rel_pos.mlp': dict(decay_mult=0.0)}))

# coat_backbone's hooks: checkpoints written atomically, and a stop at the first non-finite loss.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=16000))
custom_hooks = [dict(type='NonFiniteLossHook')]
