# Deformable DETR with a CoaT backbone: mmdet's Deformable DETR (multi-scale, single stage, no box
# refinement, as in the official CoaT experiments) on the CoaT scales 2-4 (strides 8/16/32); the
# neck adds the fourth level (stride 64) with a stride-2 conv (num_outs=4). Optimisation as the
# official Deformable DETR: AdamW lr 2e-4, backbone lr x0.1, weight decay 1e-4, gradient clipping
# at norm 0.1, 50 epochs with the lr divided by 10 after epoch 40, 8 GPUs x 2 images.
# A config built on this sets the variant: arch, checkpoint, drop_path_rate, neck in_channels.
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'
custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='CoaT',
        out_indices=(1, 2, 3),
        drop_path_rate=0.0,
        frozen_stages=-1,
        with_cp=False),
    neck=dict(num_outs=4))

train_dataloader = dict(batch_size=2)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            # Official Deformable DETR: the deformable attention's sampling offsets and reference
            # points also learn at 0.1 x lr.
            'sampling_offsets': dict(lr_mult=0.1),
            'reference_points': dict(lr_mult=0.1),
        },
        # CoaT shares modules between blocks; with paramwise options, mmengine's optimizer
        # constructor rejects the shared parameters unless duplicates are bypassed.
        bypass_duplicate=True))
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1))
custom_hooks = [dict(type='NonFiniteLossHook')]
