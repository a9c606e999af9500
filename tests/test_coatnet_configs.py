"""The CoAtNet configs: Mask R-CNN 1x and 3x and UperNet 160k carry mmdet's and mmseg's Swin-T
recipes with CoAtNet, timm's Hub weights and their input normalisation, build their model and
optimizer on CPU, and exempt norms and relative position terms from weight decay; the ImageNet
config builds its classifier; the neck check knows CoAtNet."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

from coat_backbone.engine import adapt_to_machine
from coat_backbone.engine.runtime import check_neck_fits_backbone
from coat_backbone.models.coatnet import PIXEL_MEAN_STD, PRETRAINED, resolve_arch
from tiny_archs import TINY_COATNET_RMLP

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
ARCHS = ('coatnet_0_rw', 'coatnet_rmlp_1_rw')
# Detection at 800x1344, 2 images: window attention with the last stride-16 block global; the
# larger model checkpointed to fit 16 GiB (docs/coatnet.md).
DETECTION_ATTENTION = {
    'coatnet_0_rw': dict(attention='window', global_blocks=(6, ), with_cp=False),
    'coatnet_rmlp_1_rw': dict(attention='window', global_blocks=(13, ), with_cp=True)}
DET = {f'mask_rcnn_{arch}_fpn_{schedule}': (arch, schedule)
       for arch in ARCHS for schedule in ('1x', '3x')}
SEG = {f'upernet_{arch}_512x512_160k_ade20k': arch for arch in ARCHS}
LOADED = {name: Config.fromfile(CONFIGS / f'{name}.py') for name in [*DET, *SEG]}
WIDTHS = [96, 192, 384, 768]


def load(name: str) -> Config:
    return copy.deepcopy(LOADED[name])


def build(cfg: Config, scope: str, device: str = 'meta'):
    """Model and optimizer wrapper; on 'meta' with real shapes and no memory."""
    init_default_scope(scope)
    registry = MODELS if scope is None else __import__(f'{scope}.registry',
                                                       fromlist=['MODELS']).MODELS
    cfg.model.backbone.init_cfg = None
    with torch.device(device):
        model = registry.build(cfg.model)
    adapt_to_machine(cfg)
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def check_backbone(cfg: Config, arch: str) -> None:
    backbone = cfg.model.backbone
    assert backbone.type == 'CoAtNet' and backbone.arch == arch
    assert tuple(backbone.out_indices) == (0, 1, 2, 3) and backbone.norm_eval
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=PRETRAINED[arch][0])
    mean, std = PIXEL_MEAN_STD[arch]
    assert (tuple(cfg.model.data_preprocessor.mean), tuple(cfg.model.data_preprocessor.std)) == (
        mean, std)
    assert cfg.model.data_preprocessor.bgr_to_rgb
    assert cfg.custom_imports == dict(imports=['coat_backbone'], allow_failed_imports=False)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.custom_hooks == [dict(type='NonFiniteLossHook')]
    assert resolve_arch(arch)['embed_dims'] == WIDTHS


def check_decay(model, optim_wrapper, base_decay: float) -> None:
    """No decay on norms and relative position terms (bias tables, the rmlp MLP), as the Swin
    recipe and timm's no_weight_decay; decay on the rest."""
    decay = {id(p): group['weight_decay'] for group in optim_wrapper.optimizer.param_groups
             for p in group['params']}
    names = dict(model.backbone.named_parameters())
    exempt = {name for name in names if 'norm' in name or 'rel_pos' in name}
    assert any('relative_position_bias_table' in name or 'rel_pos.mlp' in name for name in exempt)
    for name, param in names.items():
        assert decay[id(param)] == (0.0 if name in exempt else base_decay), name


@pytest.mark.parametrize('name', sorted(DET))
def test_mask_rcnn_recipe(name):
    arch, schedule = DET[name]
    cfg = load(name)
    check_backbone(cfg, arch)
    backbone = cfg.model.backbone
    assert {key: backbone[key] for key in DETECTION_ATTENTION[arch]} == DETECTION_ATTENTION[arch]
    assert backbone.drop_path_rate == 0.2  # Swin-T's
    assert cfg.model.type == 'MaskRCNN' and list(cfg.model.neck.in_channels) == WIDTHS
    assert cfg.model.data_preprocessor.pad_size_divisor == 32
    optim = cfg.optim_wrapper
    assert optim.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert optim.paramwise_cfg.custom_keys == {
        'absolute_pos_embed': dict(decay_mult=0.0), 'norm': dict(decay_mult=0.0),
        'relative_position_bias_table': dict(decay_mult=0.0),
        'rel_pos.mlp': dict(decay_mult=0.0)}
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 0.001, 1000)
    epochs, milestones = {'1x': (12, [8, 11]), '3x': (36, [27, 33])}[schedule]
    assert (steps.milestones, cfg.train_cfg.max_epochs) == (milestones, epochs)
    assert cfg.train_dataloader.batch_size == 2
    augmentation = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert ('RandomChoice' in augmentation) == (schedule == '3x')  # Swin's ms-crop for 3x

    check_neck_fits_backbone(cfg)
    model, optim_wrapper = build(cfg, 'mmdet')
    with torch.no_grad():
        features = model.extract_feat(torch.zeros(1, 3, 64, 96, device='meta'))
    assert [tuple(f.shape[1:]) for f in features] == [(256, -(-64 // s), -(-96 // s))
                                                      for s in (4, 8, 16, 32, 64)]
    check_decay(model, optim_wrapper, 0.05)


@pytest.mark.parametrize('name', sorted(SEG))
def test_upernet_recipe(name):
    arch = SEG[name]
    cfg = load(name)
    check_backbone(cfg, arch)
    backbone = cfg.model.backbone
    # 512x512 crops: the stride-16 map is 32x32, global attention as pretrained.
    assert backbone.attention == 'global' and not backbone.with_cp
    assert backbone.drop_path_rate == 0.3 and cfg.model.get('pretrained') is None
    assert list(cfg.model.decode_head.in_channels) == WIDTHS
    assert (cfg.model.auxiliary_head.in_index, cfg.model.auxiliary_head.in_channels) == (2, 384)
    assert tuple(cfg.model.data_preprocessor.size) == (512, 512)
    optim = cfg.optim_wrapper
    assert optim.optimizer == dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
    warmup, poly = cfg.param_scheduler
    assert (warmup.end, poly.type, poly.end) == (1500, 'PolyLR', 160000)
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2

    check_neck_fits_backbone(cfg)
    model, optim_wrapper = build(cfg, 'mmseg')
    model.eval()
    with torch.no_grad():
        # Any test size: padded inside the backbone.
        features = model.extract_feat(torch.zeros(1, 3, 70, 100, device='meta'))
        assert model.decode_head(features).shape == (1, 150, 18, 25)
    check_decay(model, optim_wrapper, 0.01)


def test_neck_check_knows_coatnet():
    cfg = load('mask_rcnn_coatnet_0_rw_fpn_1x')
    check_neck_fits_backbone(cfg)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    with pytest.raises(ValueError, match=r"model.neck.in_channels=\[64, 128, 256, 512\] does not "
                       r"fit the backbone: CoAtNet with arch='coatnet_0_rw' and out_indices="
                       r"\(0, 1, 2, 3\) returns maps of \[96, 192, 384, 768\] channels"):
        check_neck_fits_backbone(cfg)


def test_a_small_detector_trains_a_step_on_cpu():
    """The 1x config with a tiny CoAtNet (narrow heads), one training step on real tensors: the
    windows, the global block and checkpointing run inside mmdet's detector."""
    cfg = load('mask_rcnn_coatnet_rmlp_1_rw_fpn_1x')
    cfg.model.backbone.update(arch=TINY_COATNET_RMLP, global_blocks=(2, ), window_size=3)
    cfg.model.neck.in_channels = TINY_COATNET_RMLP['embed_dims']
    model, optim_wrapper = build(cfg, 'mmdet', device='cpu')
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from mmdet.structures.mask import BitmapMasks
    sample = DetDataSample(metainfo=dict(img_shape=(96, 128), pad_shape=(96, 128),
                                         batch_input_shape=(96, 128), scale_factor=(1.0, 1.0)))
    masks = torch.zeros(1, 96, 128, dtype=torch.uint8)
    masks[:, 20:60, 30:90] = 1
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[30.0, 20.0, 90.0, 60.0]]),
                                       labels=torch.tensor([1]),
                                       masks=BitmapMasks(masks.numpy(), 96, 128))
    model.train()
    losses = model.loss(torch.randn(1, 3, 96, 128), [sample])
    loss, _ = model.parse_losses(losses)
    optim_wrapper.update_params(loss)
    assert torch.isfinite(loss)


def test_imagenet_config_builds_timms_classifier():
    cfg = Config.fromfile(CONFIGS / 'imagenet' / 'coatnet_0_rw_in1k.py')
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch, backbone.num_classes) == (
        'CoAtNetClassifier', 'coatnet_0_rw', 1000)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        transform = loader.dataset.transform
        assert (transform.mean, transform.std) == ((0.5, ) * 3, (0.5, ) * 3)  # timm's weights'
    assert cfg.val_dataloader.dataset.transform.crop_pct == 0.95
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    import timm
    reference = timm.create_model('coatnet_0_rw_224', pretrained=False)
    assert {k: v.shape for k, v in model.backbone.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}


def test_a_classification_checkpoint_initialises_the_backbone(tmp_path):
    """A tiny run of tools/train_cls.py's code with a CoAtNetClassifier writes checkpoints whose
    weights CoAtNet loads as they are (the classifier's norm and head dropped)."""
    from cls_helpers import tiny_cls_config, write_config
    from coat_backbone import CoAtNet
    from coat_backbone.checkpoint import read_checkpoint
    from coat_backbone.datasets import SyntheticImageNetArgs, generate_synthetic_imagenet
    from coat_backbone.engine import cli
    data = generate_synthetic_imagenet(tmp_path / 'data', SyntheticImageNetArgs(
        train_per_class=8, val_per_class=2))
    cfg = tiny_cls_config(data, tmp_path / 'work', max_epochs=2)
    cfg.model.backbone = dict(type='CoAtNetClassifier', arch=TINY_COATNET_RMLP,
                              num_classes=cfg.num_classes)
    cfg.train_dataloader.batch_size = 16
    cli.train_main([str(write_config(cfg, tmp_path / 'tiny_coatnet_cls.py'))])
    checkpoint = tmp_path / 'work' / 'epoch_2.pth'
    backbone = CoAtNet(TINY_COATNET_RMLP,
                       init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)))
    backbone.init_weights()
    saved = read_checkpoint(checkpoint)['state_dict']
    assert {key for key in saved if not key.startswith(('backbone.norm.', 'backbone.head.'))} \
        == {f'backbone.{key}' for key in backbone.state_dict()}
    assert all(torch.equal(value, saved[f'backbone.{key}'])
               for key, value in backbone.state_dict().items())
