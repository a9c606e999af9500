# UperNet with a CoaT backbone on ADE20K, 512x512 crops, 160k iterations. The CoaT authors released
# no segmentation models and pointed to the Swin UperNet recipe; this is that recipe (mmseg's
# Swin-T UperNet config) with CoaT in place of Swin. A config built on this sets the variant:
# backbone arch, its ImageNet checkpoint and drop_path_rate, decode_head in_channels = the variant's
# embed_dims and auxiliary_head in_channels = embed_dims[2].
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

crop_size = (512, 512)
model = dict(
    # Pads training batches to the crop size; test images are not padded (any size works).
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='CoaT',
        out_indices=(0, 1, 2, 3),
        # Set per variant. ADE20K's 160k iterations x 16 images are ~127 epochs of its 20k training
        # images, far longer than the 36-epoch COCO recipe (drop path 0, 0.2 for CoaT Small), so
        # more regularisation: 0.1 for tiny/mini/lite_tiny/lite_mini, 0.2 for small/lite_small
        # (Swin-T uses 0.3 at 28M parameters), 0.3 for lite_medium (its ImageNet rate).
        drop_path_rate=0.1,
        frozen_stages=-1,
        with_cp=False),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(in_index=2, num_classes=150),
    # Whole-image inference on the test pipeline's resized image (short side 512, any size).
    # Sliding windows instead: --cfg-options model.test_cfg.mode=slide
    #   model.test_cfg.crop_size="(512,512)" model.test_cfg.stride="(341,341)"
    test_cfg=dict(mode='whole'))

# AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01 except on norms and class tokens, in mixed
# precision; for 8 GPUs x 2 images (auto_scale_lr rescales it when enabled, --auto-scale-lr).
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    # bypass_duplicate: CoaT shares modules between blocks (per-scale CPE/CRPE, the parallel
    # blocks' MLP), which mmengine's optimizer constructor otherwise rejects as parameters "in more
    # than one parameter group" once paramwise options are set.
    paramwise_cfg=dict(
        bypass_duplicate=True,
        custom_keys={
            'norm': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0),
        }))
# Linear warm-up over 1500 iterations from 1e-6 x lr, then linear (power 1) decay to 0 at 160k.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)

# coat_backbone's hooks: checkpoints written atomically, and a stop at the first non-finite loss.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=16000))
custom_hooks = [dict(type='NonFiniteLossHook')]
