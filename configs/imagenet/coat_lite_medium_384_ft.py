# CoaT-Lite Medium fine-tuned at 384x384 from its 224 ImageNet-1k weights, the official command
# (README of mlpc-ucsd/CoaT): 8 GPUs x 32 images, 6 epochs, lr 5e-6 x 256 / 512 with no warm-up and
# a cosine towards min lr 5e-6 (so the lr rises slightly, as in the official run), weight decay
# 1e-8, drop path 0.2, no EMA, gradient clipping 5.0; augmentation as in pretraining, at 384.
# Evaluation as the official one: short side 438, centre crop 384 (timm's own setting for these
# weights squashes to 384 instead: tools/eval_cls.py --crop-pct 1.0 --crop-mode squash).
# Official result (top-1 / top-5): 84.5 / 97.1, checkpoint coat_lite_medium_384x384_f9129688.pth.
# Start: the 224 weights, loaded with the head: timm's copy of the official ones on the Hugging Face
# Hub, or those of a run of configs/imagenet/coat_lite_medium_in1k.py.
_base_ = './coat_lite_medium_in1k.py'

img_size = 384
train_dataloader = dict(batch_size=32, dataset=dict(transform=dict(input_size=img_size)))
val_dataloader = dict(batch_size=64, dataset=dict(transform=dict(input_size=img_size)))
test_dataloader = val_dataloader

model = dict(
    backbone=dict(
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/coat_lite_medium.in1k')))
optim_wrapper = dict(optimizer=dict(lr=5e-6, weight_decay=1e-8))

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=5e-6, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
