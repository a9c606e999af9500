# UperNet, CoAtNet-RMLP-1 (timm coatnet_rmlp_1_rw, 41.7M parameters, ImageNet top-1 83.4), ADE20K
# 512x512, 160k iterations, 8 GPUs x 2 images. Not trained yet. The recipe of the CoAtNet-0 config
# (mmseg's Swin-T UperNet recipe), with this variant's weights. Global attention: the backbone's
# forward+backward at 512x512, batch 2, fp32, needs 4.2 GiB (docs/coatnet.md).
_base_ = './upernet_coatnet_0_rw_512x512_160k_ade20k.py'

model = dict(
    backbone=dict(
        arch='coatnet_rmlp_1_rw',
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coatnet_rmlp_1_rw_224.sw_in1k')))
