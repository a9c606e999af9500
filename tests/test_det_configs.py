"""Every detection config builds (model and optimizer), and the published ones carry the
official CoaT recipe field by field (the reference: the CoaT paper and its released configs). The
CoAtNet recipes are checked in test_coatnet_configs.py."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from coat_backbone.engine import adapt_to_machine
from coat_backbone.engine.runtime import check_neck_fits_backbone
from coat_backbone.models.coat import ARCH_SETTINGS
from det_helpers import CONFIG_DIR, TINY_ARCH, config_paths

# Loaded once (resolving mmdet:: bases takes about a second per file); tests get copies.
LOADED = {path: Config.fromfile(path) for path in config_paths()}
DET_CONFIGS = [path for path, cfg in LOADED.items() if cfg.get('default_scope') == 'mmdet']
PUBLISHED_MASK_RCNN = [f'mask_rcnn_coat_{arch}_fpn_{schedule}'
                       for arch in ('lite_mini', 'lite_small', 'mini', 'small')
                       for schedule in ('1x', '3x')]
PUBLISHED_CASCADE = [f'cascade_mask_rcnn_coat_{arch}_fpn_{schedule}'
                     for arch in ('lite_small', 'small') for schedule in ('1x', '3x')]
PUBLISHED_DETR = ['deformable_detr_coat_lite_small_50e', 'deformable_detr_coat_small_50e']
UNPUBLISHED = [f'mask_rcnn_coat_{arch}_fpn_{schedule}'
               for arch in ('tiny', 'lite_tiny', 'lite_medium') for schedule in ('1x', '3x')]
SCHEDULES = {'1x': (12, [8, 11]), '3x': (36, [27, 33])}


def load(name: str) -> Config:
    return copy.deepcopy(LOADED[CONFIG_DIR / f'{name}.py'])


def build_model_and_optimizer(cfg: Config, device: str = 'cpu'):
    """Build on `device`; 'meta' skips the weights' memory and initialisation (shapes only)."""
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    with torch.device(device):
        model = MODELS.build(cfg.model)
    adapt_to_machine(cfg)  # without a GPU, AMP falls back to fp32 (AmpOptimWrapper needs CUDA)
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def test_the_expected_configs_exist():
    names = {path.stem for path in DET_CONFIGS}
    assert set(PUBLISHED_MASK_RCNN + PUBLISHED_CASCADE + PUBLISHED_DETR + UNPUBLISHED) <= names
    for name in UNPUBLISHED:
        assert 'NO PUBLISHED RESULT' in (CONFIG_DIR / f'{name}.py').read_text()


@pytest.mark.parametrize('path', DET_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_config_builds_model_and_optimizer(path: Path):
    cfg = copy.deepcopy(LOADED[path])
    assert cfg.custom_imports == dict(imports=['coat_backbone'], allow_failed_imports=False)
    assert cfg.model.backbone.type in ('CoaT', 'CoAtNet')
    cfg.model.backbone.init_cfg = None
    check_neck_fits_backbone(cfg)  # no false alarm: the forward below proves the fit
    # Full-size models on the meta device: real shapes, no weights to allocate or initialise.
    model, optim_wrapper = build_model_and_optimizer(cfg, device='meta')
    # The neck takes what the backbone gives: a mismatched in_channels fails here.
    with torch.no_grad():
        features = model.extract_feat(torch.zeros(1, 3, 64, 64, device='meta'))
    assert all(f.shape[1] == cfg.model.neck.out_channels for f in features)
    # Every parameter, shared ones included, is optimised exactly once.
    grouped = [id(p) for group in optim_wrapper.optimizer.param_groups for p in group['params']]
    assert sorted(grouped) == sorted({id(p) for p in model.parameters()})


def check_backbone(cfg: Config, arch: str, out_indices) -> None:
    backbone = cfg.model.backbone
    assert backbone.arch == arch and tuple(backbone.out_indices) == tuple(out_indices)
    assert backbone.drop_path_rate == (0.2 if arch == 'small' else 0.0)
    checkpoint = f'hf-hub:timm/coat_{arch}.in1k'  # timm's copy of the official weights
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    embed_dims = ARCH_SETTINGS[arch]['embed_dims']
    assert list(cfg.model.neck.in_channels) == [embed_dims[i] for i in out_indices]


def check_detr_style_augmentation(pipeline) -> None:
    multi_scale = [(short, 1333) for short in range(480, 801, 32)]
    choice = next(t for t in pipeline if t.type == 'RandomChoice')
    resize_only, crop_branch = choice.transforms
    assert [t.type for t in resize_only] == ['RandomChoiceResize']
    assert [tuple(s) for s in resize_only[0].scales] == multi_scale
    assert [t.type for t in crop_branch] == ['RandomChoiceResize', 'RandomCrop',
                                             'RandomChoiceResize']
    assert [tuple(s)[0] for s in crop_branch[0].scales] == [400, 500, 600]
    assert crop_branch[1].crop_type == 'absolute_range'
    assert tuple(crop_branch[1].crop_size) == (384, 600)
    assert [tuple(s) for s in crop_branch[2].scales] == multi_scale


def check_rcnn_recipe(name: str) -> Config:
    cfg = load(name)
    arch = name.split('coat_')[1].split('_fpn')[0]
    epochs, milestones = SCHEDULES[name[-2:]]
    check_backbone(cfg, arch, (0, 1, 2, 3))
    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper' and optim.loss_scale == 'dynamic'
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.lr == 1e-4
    assert tuple(optim.optimizer.betas) == (0.9, 0.999) and optim.optimizer.weight_decay == 0.05
    assert optim.paramwise_cfg == dict(bypass_duplicate=True)  # decay on every parameter
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.by_epoch, warmup.begin, warmup.end) == (
        'LinearLR', 0.001, False, 0, 500)
    assert (steps.type, steps.milestones, steps.gamma, steps.end) == (
        'MultiStepLR', milestones, 0.1, epochs)
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)
    assert cfg.model.data_preprocessor.pad_size_divisor == 32
    check_detr_style_augmentation(cfg.train_dataloader.dataset.pipeline)
    test_resize = next(t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize')
    assert tuple(test_resize.scale) == (1333, 800) and test_resize.keep_ratio
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.custom_hooks == [dict(type='NonFiniteLossHook')]
    return cfg


@pytest.mark.parametrize('name', PUBLISHED_MASK_RCNN + UNPUBLISHED)
def test_mask_rcnn_recipe(name: str):
    assert check_rcnn_recipe(name).model.type == 'MaskRCNN'


@pytest.mark.parametrize('name', PUBLISHED_CASCADE)
def test_cascade_mask_rcnn_recipe(name: str):
    cfg = check_rcnn_recipe(name)
    assert cfg.model.type == 'CascadeRCNN'
    stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
    for head, target_stds in zip(cfg.model.roi_head.bbox_head, stds, strict=True):
        assert head.type == 'Shared4Conv1FCBBoxHead'
        assert head.norm_cfg == dict(type='SyncBN', requires_grad=True)
        assert head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
        assert head.reg_decoded_bbox and not head.reg_class_agnostic
        assert head.bbox_coder.target_stds == target_stds


@pytest.mark.parametrize('name', PUBLISHED_DETR)
def test_deformable_detr_recipe(name: str):
    cfg = load(name)
    arch = name.split('coat_')[1].split('_50e')[0]
    assert cfg.model.type == 'DeformableDETR'
    assert not cfg.model.with_box_refine and not cfg.model.as_two_stage
    check_backbone(cfg, arch, (1, 2, 3))
    assert cfg.model.neck.num_outs == 4 and cfg.model.num_feature_levels == 4
    optim = cfg.optim_wrapper
    assert optim.type == 'OptimWrapper' and optim.optimizer.type == 'AdamW'
    assert (optim.optimizer.lr, optim.optimizer.weight_decay) == (2e-4, 1e-4)
    assert optim.clip_grad == dict(max_norm=0.1, norm_type=2)
    assert optim.paramwise_cfg.custom_keys.backbone == dict(lr_mult=0.1)
    assert optim.paramwise_cfg.bypass_duplicate
    (steps,) = cfg.param_scheduler
    assert (steps.type, steps.milestones, steps.end) == ('MultiStepLR', [40], 50)
    assert cfg.train_cfg.max_epochs == 50
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)


def test_optimizer_decays_every_parameter_and_takes_paramwise_options():
    cfg = load('mask_rcnn_coat_small_fpn_1x')
    cfg.model.backbone.update(arch=TINY_ARCH, init_cfg=None)
    cfg.model.neck.in_channels = TINY_ARCH['embed_dims']
    _, optim_wrapper = build_model_and_optimizer(copy.deepcopy(cfg))
    assert {g['weight_decay'] for g in optim_wrapper.optimizer.param_groups} == {0.05}
    # A user's paramwise option must not trip over CoaT's shared modules.
    cfg.optim_wrapper.paramwise_cfg.norm_decay_mult = 0.0
    model, optim_wrapper = build_model_and_optimizer(cfg)
    decays = {id(p): g['weight_decay'] for g in optim_wrapper.optimizer.param_groups
              for p in g['params']}
    assert decays[id(model.backbone.serial_blocks1[0].norm1.weight)] == 0.0
    assert decays[id(model.backbone.serial_blocks1[0].mlp.fc1.weight)] == 0.05


def test_deformable_detr_backbone_learns_at_a_tenth():
    cfg = load('deformable_detr_coat_small_50e')
    cfg.model.backbone.update(arch=TINY_ARCH, init_cfg=None)
    cfg.model.neck.in_channels = TINY_ARCH['embed_dims'][1:]
    model, optim_wrapper = build_model_and_optimizer(cfg)
    lrs = {id(p): g['lr'] for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    assert all(lrs[id(p)] == pytest.approx(2e-5) for p in model.backbone.parameters())
    assert lrs[id(model.bbox_head.cls_branches[0].weight)] == pytest.approx(2e-4)
