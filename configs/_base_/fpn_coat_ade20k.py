# Semantic FPN with a CoaT backbone on ADE20K, 512x512 crops, 40k iterations: the recipe of PVT's
# released Semantic FPN configs with CoaT in place of PVT. PVT's paper trains 80k iterations of
# 4 GPUs x 4 images at lr 1e-4; its configs run 8 GPUs x 4 images, so lr x 2 = 2e-4 and 80k / 2 =
# 40k iterations (the same 1.28M images); AdamW, weight decay 1e-4 on every parameter, poly decay
# with power 0.9 to 0. A config built on this sets the variant: backbone arch and its ImageNet
# checkpoint, neck in_channels = the variant's embed_dims.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

crop_size = (512, 512)
model = dict(
    # Pads training batches to the crop size; test images are not padded (any size works).
    data_preprocessor=dict(size=crop_size),
    # The base's ResNet checkpoint would otherwise be handed to the backbone.
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='CoaT',
        out_indices=(0, 1, 2, 3),
        # 0.1 as PVT's Semantic FPN models (every size); 40k iterations x 32 images are ~63 epochs.
        drop_path_rate=0.1,
        frozen_stages=-1,
        with_cp=False),
    decode_head=dict(num_classes=150),
    # Whole-image inference on the test pipeline's resized image (short side 512, any size).
    # Sliding windows instead: --cfg-options model.test_cfg.mode=slide
    #   model.test_cfg.crop_size="(512,512)" model.test_cfg.stride="(341,341)"
    test_cfg=dict(mode='whole'))

# fp32 as PVT's recipe (tools/train.py --amp for mixed precision); weight decay on every parameter.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=40000),
]
# 4 images per GPU, 8 GPUs: the lr is for a total batch of 32 (auto_scale_lr rescales it when
# enabled, tools/train.py --auto-scale-lr).
train_dataloader = dict(batch_size=4)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=32)

# coat_backbone's hooks: checkpoints written atomically, and a stop at the first non-finite loss.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=4000))
custom_hooks = [dict(type='NonFiniteLossHook')]
