"""Every segmentation config builds (model and optimizer), and the ADE20K ones carry their recipe
field by field: the Swin UperNet recipe the CoaT authors pointed to, and PVT's Semantic FPN
recipe."""
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
from seg_helpers import CONFIG_DIR, seg_config_paths

# Loaded once (resolving mmseg:: bases takes about a second per file); tests get copies.
LOADED = {path: Config.fromfile(path) for path in seg_config_paths()}
ARCHS = ('tiny', 'mini', 'small', 'lite_tiny', 'lite_mini', 'lite_small', 'lite_medium')
MAIN_ARCHS = ('lite_mini', 'lite_small', 'mini', 'small')
UPERNET_DROP_PATH = dict(tiny=0.1, mini=0.1, lite_tiny=0.1, lite_mini=0.1, small=0.2,
                         lite_small=0.2, lite_medium=0.3)


def upernet(arch: str) -> str:
    return f'upernet_coat_{arch}_512x512_160k_ade20k'


def fpn(arch: str) -> str:
    return f'fpn_coat_{arch}_512x512_40k_ade20k'


def load(name: str) -> Config:
    return copy.deepcopy(LOADED[CONFIG_DIR / f'{name}.py'])


def build_model_and_optimizer(cfg: Config, device: str = 'cpu'):
    """Build on `device`; 'meta' skips the weights' memory and initialisation (shapes only)."""
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    cfg.model.backbone.init_cfg = None
    with torch.device(device):
        model = MODELS.build(cfg.model)
    adapt_to_machine(cfg)  # without a GPU, AMP falls back to fp32 (AmpOptimWrapper needs CUDA)
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def test_the_expected_configs_exist():
    names = {path.stem for path in LOADED}
    expected = {make(arch) for arch in ARCHS for make in (upernet, fpn)} | {'fpn_coat_demo_seg'}
    assert names == expected
    for arch in ARCHS:
        for name in (upernet(arch), fpn(arch)):
            header = (CONFIG_DIR / f'{name}.py').read_text().split('_base_')[0]
            assert ('UNTESTED EXTRA' in header) == (arch not in MAIN_ARCHS), name
            assert 'Not trained yet' in header or arch not in MAIN_ARCHS, name


@pytest.mark.parametrize('path', list(LOADED), ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_config_builds_model_and_optimizer(path: Path):
    cfg = copy.deepcopy(LOADED[path])
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports.imports[0] == 'coat_backbone'
    assert cfg.custom_imports.allow_failed_imports is False
    assert cfg.model.backbone.type == 'CoaT'
    check_neck_fits_backbone(cfg)  # no false alarm: the forward below proves the fit
    # Full-size models on the meta device: real shapes, no weights to allocate or initialise.
    model, optim_wrapper = build_model_and_optimizer(cfg, device='meta')
    model.eval()  # batch statistics of a single image would fail on UperNet's 1x1 pooled map
    # Each head takes what the backbone (and neck) give: a mismatched in_channels fails here.
    with torch.no_grad():
        features = model.extract_feat(torch.zeros(1, 3, 64, 96, device='meta'))
        assert model.decode_head(features).shape == (1, model.decode_head.num_classes, 16, 24)
        if model.with_auxiliary_head:  # on the stride-16 map
            auxiliary = model.auxiliary_head
            assert auxiliary(features).shape == (1, auxiliary.num_classes, 4, 6)
    # Every parameter, shared ones included, is optimised exactly once.
    grouped = [id(p) for group in optim_wrapper.optimizer.param_groups for p in group['params']]
    assert sorted(grouped) == sorted({id(p) for p in model.parameters()})
    if 'custom_keys' in cfg.optim_wrapper.get('paramwise_cfg', {}):
        check_no_decay_on_norms_and_class_tokens(model, optim_wrapper)


def check_no_decay_on_norms_and_class_tokens(model, optim_wrapper) -> None:
    """The optimizer really exempts the LayerNorms and the class tokens from weight decay."""
    decay = {id(p): group['weight_decay'] for group in optim_wrapper.optimizer.param_groups
             for p in group['params']}
    base_decay = optim_wrapper.optimizer.defaults['weight_decay']
    names = dict(model.named_parameters())
    exempt = {name for name in names if 'norm' in name or 'cls_token' in name}
    # The four class tokens and the LayerNorms of the patch embeddings and blocks.
    assert {f'backbone.cls_token{i}' for i in range(1, 5)} <= exempt
    assert {'backbone.patch_embed1.norm.weight', 'backbone.serial_blocks1.0.norm1.weight'} <= exempt
    assert base_decay > 0
    for name, param in names.items():
        assert decay[id(param)] == (0.0 if name in exempt else base_decay), name


def check_backbone(cfg: Config, arch: str, drop_path_rate: float) -> None:
    backbone = cfg.model.backbone
    assert backbone.arch == arch and tuple(backbone.out_indices) == (0, 1, 2, 3)
    assert backbone.drop_path_rate == drop_path_rate
    checkpoint = f'hf-hub:timm/coat_{arch}.in1k'  # timm's copy of the official weights
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    assert cfg.model.get('pretrained') is None
    assert tuple(cfg.model.data_preprocessor.size) == (512, 512)
    assert cfg.model.test_cfg == dict(mode='whole')
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    crop = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop')
    assert tuple(crop.crop_size) == (512, 512)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.custom_hooks == [dict(type='NonFiniteLossHook')]


@pytest.mark.parametrize('arch', ARCHS)
def test_upernet_recipe(arch: str):
    cfg = load(upernet(arch))
    check_backbone(cfg, arch, UPERNET_DROP_PATH[arch])
    embed_dims = list(ARCH_SETTINGS[arch]['embed_dims'])
    head, auxiliary = cfg.model.decode_head, cfg.model.auxiliary_head
    assert (head.type, list(head.in_channels), head.num_classes) == ('UPerHead', embed_dims, 150)
    assert (auxiliary.type, auxiliary.in_index, auxiliary.in_channels, auxiliary.num_classes) == (
        'FCNHead', 2, embed_dims[2], 150)
    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper' and optim.loss_scale == 'dynamic'
    assert optim.optimizer == dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
    assert optim.paramwise_cfg == dict(
        bypass_duplicate=True,
        custom_keys={'norm': dict(decay_mult=0.0), 'cls_token': dict(decay_mult=0.0)})
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.by_epoch, warmup.begin, warmup.end) == (
        'LinearLR', 1e-6, False, 0, 1500)
    assert (poly.type, poly.power, poly.eta_min, poly.by_epoch, poly.begin, poly.end) == (
        'PolyLR', 1.0, 0.0, False, 1500, 160000)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 160000
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)


@pytest.mark.parametrize('arch', ARCHS)
def test_semantic_fpn_recipe(arch: str):
    cfg = load(fpn(arch))
    check_backbone(cfg, arch, 0.1)
    assert list(cfg.model.neck.in_channels) == list(ARCH_SETTINGS[arch]['embed_dims'])
    head = cfg.model.decode_head
    assert (head.type, head.num_classes) == ('FPNHead', 150)
    assert 'auxiliary_head' not in cfg.model
    optim = cfg.optim_wrapper
    assert optim.type == 'OptimWrapper' and 'paramwise_cfg' not in optim
    assert optim.optimizer == dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4)
    (poly, ) = cfg.param_scheduler
    assert (poly.type, poly.power, poly.eta_min, poly.by_epoch, poly.begin, poly.end) == (
        'PolyLR', 0.9, 0.0, False, 0, 40000)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 40000
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=32)
