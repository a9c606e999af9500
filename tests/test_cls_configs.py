"""Every ImageNet config builds its model, and the published ones carry the official recipe field by
field (reference: the CoaT repository's training arguments and README commands)."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS

from cls_helpers import IMAGENET_CONFIGS

CONFIGS = {path.stem: Config.fromfile(path) for path in sorted(IMAGENET_CONFIGS.glob('*.py'))}
# Published parameter counts (millions) of the classifiers (CoAtNet: timm's results CSV).
PARAMS = dict(tiny=5.5, mini=10.3, small=21.7, lite_tiny=5.7, lite_mini=11.0, lite_small=19.8,
              lite_medium=44.6, coatnet_0_rw=27.44)
LARGE = ('coat_small_in1k', 'coat_lite_medium_in1k')


def test_a_config_per_variant_plus_fine_tune_and_demo():
    expected = {f'coat_{arch}_in1k' for arch in PARAMS if not arch.startswith('coatnet')}
    assert set(CONFIGS) == expected | {'coat_lite_medium_384_ft', 'demo_synthetic_imagenet',
                                       'coatnet_0_rw_in1k'}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_builds_its_model(name):
    cfg = CONFIGS[name]
    assert cfg.custom_imports.imports[-1] == 'coat_backbone.classification'
    assert cfg.default_scope == 'mmengine'
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.pop('init_cfg', None)
    with torch.device('meta'):  # real sizes, no memory
        model = MODELS.build(model_cfg)
    arch = model_cfg.backbone.arch
    if isinstance(arch, str):
        params = sum(p.numel() for p in model.parameters()) / 1e6
        assert params == pytest.approx(PARAMS[arch], abs=0.06)
        assert model.backbone.num_classes == 1000


def test_official_recipe():
    cfg = CONFIGS['coat_lite_tiny_in1k']
    loader = cfg.train_dataloader
    assert loader.batch_size * 8 == 2048 and loader.drop_last
    assert loader.sampler == dict(type='RepeatAugSampler', num_repeats=3, shuffle=True)
    assert loader.dataset.transform == dict(
        input_size=224, is_training=True, auto_augment='rand-m9-mstd0.5-inc1',
        interpolation='bicubic', color_jitter=0.4, re_prob=0.25, re_mode='pixel', re_count=1)
    assert cfg.test_dataloader.dataset.transform == dict(
        input_size=224, interpolation='bicubic', crop_pct=0.875, crop_mode='center')
    assert cfg.model.mixup == dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5,
                                   mode='batch')
    assert cfg.model.label_smoothing == 0.1
    assert cfg.model.backbone.drop_path_rate == 0.0  # the official default
    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper'
    assert optim.optimizer == dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), eps=1e-8,
                                   weight_decay=0.05)
    assert 'clip_grad' not in optim
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=512)
    assert cfg.train_cfg.max_epochs == 300
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 5)
    assert (cosine.type, cosine.begin, cosine.end, cosine.eta_min) == (
        'CosineAnnealingLR', 5, 300, 1e-5)
    ema = [hook for hook in cfg.custom_hooks if hook.type == 'EMAHook']
    assert ema == [dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=4e-5)]
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert dict(type='NonFiniteLossHook') in cfg.custom_hooks


@pytest.mark.parametrize('name, drop_path', [('coat_small_in1k', 0.2),
                                             ('coat_lite_medium_in1k', 0.3)])
def test_large_model_overrides(name, drop_path):
    cfg = CONFIGS[name]
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.model.backbone.drop_path_rate == drop_path
    assert cfg.custom_hooks == [dict(type='NonFiniteLossHook')]  # no EMA
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=5.0, norm_type=2)
    warmup, cosine = cfg.param_scheduler
    assert warmup.end == cosine.begin == 20 and cosine.end == 300


def test_384_fine_tune():
    cfg = CONFIGS['coat_lite_medium_384_ft']
    assert cfg.model.backbone.arch == 'lite_medium'
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint='hf-hub:timm/coat_lite_medium.in1k')
    assert cfg.model.backbone.drop_path_rate == 0.2
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.transform.input_size == 384
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.optim_wrapper.optimizer.lr == 5e-6
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-8
    assert cfg.optim_wrapper.clip_grad.max_norm == 5.0
    assert cfg.train_cfg.max_epochs == 6
    assert cfg.param_scheduler == [dict(type='CosineAnnealingLR', T_max=6, eta_min=5e-6,
                                        by_epoch=True, begin=0, end=6,
                                        convert_to_iter_based=True)]
    assert cfg.custom_hooks == [dict(type='NonFiniteLossHook')]
