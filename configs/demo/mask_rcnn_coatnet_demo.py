# Mask R-CNN with a small CoAtNet trained from scratch on the synthetic shapes dataset: the CoaT
# demo (mask_rcnn_coat_demo.py: 128-pixel images, 64-channel FPN, slim heads, AdamW, 16 epochs)
# with CoAtNet in place of CoaT. Run it through
#   python tools/demo_synthetic.py --config configs/demo/mask_rcnn_coatnet_demo.py \
#       --work-dir work_dirs/demo_coatnet
# which generates the data first; a GPU is used when present.
_base_ = './mask_rcnn_coat_demo.py'

# Two MBConv stages and two transformer stages of coatnet_0_rw's blocks, narrow and shallow. At
# 128 pixels the stride-16 map is 8x8: global attention, as the pretrained models use.
embed_dims = [32, 64, 128, 160]
model = dict(
    backbone=dict(
        _delete_=True,
        type='CoAtNet',
        arch=dict(embed_dims=embed_dims, depths=[1, 1, 2, 1], stem_width=[16, 32],
                  style='coatnet_0_rw'),
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(in_channels=embed_dims))
