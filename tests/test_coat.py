"""The CoaT backbone and classifier: faithfulness to timm's reference, shapes at any size,
gradients, checkpointing, freezing, arch validation and registry builds."""
import numpy as np
import pytest
import timm
import torch
from mmengine.registry import MODELS

from coat_backbone import ARCH_SETTINGS, CoaT, CoaTClassifier
from coat_backbone.checkpoint import match_state_dict
from tiny_archs import TINY_ARCHS, TINY_COAT, TINY_LITE


def _timm_reference(arch: str, size: tuple) -> torch.nn.Module:
    """timm's CoaT (numerically the official model) with perturbed weights, so that norms,
    biases and class tokens are not at their trivial initial values."""
    torch.manual_seed(0)
    model = timm.create_model(f'coat_{arch}', img_size=size, num_classes=10).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return model


def _copy_weights(model: torch.nn.Module, reference: torch.nn.Module) -> torch.nn.Module:
    state_dict, _ = match_state_dict(model, reference.state_dict())
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


@pytest.mark.parametrize('arch,size', [(arch, size) for size in ((224, 224), (160, 256))
                                       for arch in sorted(ARCH_SETTINGS)]
                         # one token wide at scale 4: size-1 dimensions can change the kernels
                         + [('tiny', (96, 32)), ('lite_tiny', (96, 32))])
def test_matches_timm_features_and_logits(arch, size):
    reference = _timm_reference(arch, size)
    # The classifier is a CoaT with a head: its dense forward is the backbone's.
    classifier = _copy_weights(CoaTClassifier(arch, num_classes=10), reference)
    # Batch 1 too: its tensors' strides can lead the convolutions to other kernels.
    for images in (torch.randn(2, 3, *size), torch.randn(1, 3, *size)):
        with torch.no_grad():
            expected = reference.forward_intermediates(images, intermediates_only=True)
            features = CoaT.forward(classifier, images)
            assert len(features) == 4
            for ours, theirs in zip(features, expected):
                assert ours.shape == theirs.shape
                assert (ours - theirs).abs().max().item() <= 1e-5
            assert (classifier(images) - reference(images)).abs().max().item() <= 1e-5


@pytest.mark.parametrize('arch', ['small', 'lite_small'])
def test_published_out_channels_and_parameter_counts(arch):
    model = CoaT(arch)
    assert model.out_channels == list(ARCH_SETTINGS[arch]['embed_dims'])
    reference = timm.create_model(f'coat_{arch}', num_classes=0)
    # Without classes the reference keeps its final norms and aggregate; the backbone has neither.
    head = sum(p.numel() for name, p in reference.named_parameters()
               if name.startswith(('norm', 'aggregate')))
    assert sum(p.numel() for p in model.parameters()) == \
        sum(p.numel() for p in reference.parameters()) - head


@pytest.mark.parametrize('kind', sorted(TINY_ARCHS))
@pytest.mark.parametrize('size', [(112, 137), (67, 45), (64, 64)])
def test_any_input_size(kind, size):
    model = CoaT(TINY_ARCHS[kind]).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, *size))
    height, width = size
    for feature, channels in zip(features, model.out_channels):
        height, width = height // (4 if feature is features[0] else 2), width // (
            4 if feature is features[0] else 2)
        assert feature.shape == (1, channels, height, width)


@pytest.mark.parametrize('size', [(31, 64), (40, 24)])
def test_too_small_input_is_named(size):
    with pytest.raises(ValueError, match=rf'input {size[0]}x{size[1]} is too small.*at least 32'):
        CoaT(TINY_ARCHS['lite'])(torch.randn(1, 3, *size))


def test_an_image_without_its_batch_dimension_is_named():
    with pytest.raises(ValueError, match=r'batch of images \(B, C, H, W\), got shape \(3, 64, 64\)'
                       r'.*unsqueeze\(0\)'):
        CoaT(TINY_LITE)(torch.randn(3, 64, 64))


def test_detection_resolution_odd_size():
    model = CoaT(TINY_COAT).eval()  # the sizes depend on the strides only
    with torch.no_grad():
        features = model(torch.randn(1, 3, 803, 1211))
    assert [tuple(f.shape[2:]) for f in features] == [(200, 302), (100, 151), (50, 75), (25, 37)]


def test_out_indices():
    model = CoaT(TINY_COAT, out_indices=(1, 3))
    features = model(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == model.out_channels == [32, 32]
    assert [f.shape[2] for f in features] == [8, 2]
    assert CoaT(TINY_COAT, out_indices=3).out_indices == (3, )  # an int, as in mmpretrain
    # High to low resolution whatever the order, as mmdet's backbones return them.
    descending = CoaT(TINY_LITE, out_indices=[3, 0])
    assert descending.out_indices == (0, 3)
    assert descending.out_channels == [TINY_LITE['embed_dims'][0], TINY_LITE['embed_dims'][3]]
    assert [tuple(f.shape[1:3]) for f in descending(torch.randn(1, 3, 64, 64))] == [
        (TINY_LITE['embed_dims'][0], 16), (TINY_LITE['embed_dims'][3], 2)]
    assert CoaT(TINY_COAT, out_indices=np.array([2, 0])).out_indices == (0, 2)
    for bad in ((4, ), 4, (1, 1), (), (0.0, 1.0), True, None):
        with pytest.raises(ValueError, match='out_indices'):
            CoaT(TINY_COAT, out_indices=bad)


@pytest.mark.parametrize('kind', sorted(TINY_ARCHS))
def test_every_parameter_gets_a_gradient(kind):
    model = CoaT(TINY_ARCHS[kind]).train()
    loss = sum(f.square().mean() for f in model(torch.randn(2, 3, 96, 80)))
    loss.backward()
    without_grad = [name for name, p in model.named_parameters()
                    if p.grad is None or not p.grad.abs().sum() > 0]
    assert without_grad == []


@pytest.mark.parametrize('kind', sorted(TINY_ARCHS))
@pytest.mark.parametrize('out_indices', [(0, 1, 2), (0, 3), (1, ), (0, )])
def test_only_what_the_outputs_need_trains(kind, out_indices):
    torch.manual_seed(0)
    full = CoaT(TINY_ARCHS[kind]).train()
    partial = CoaT(TINY_ARCHS[kind], out_indices=out_indices).train()
    partial.load_state_dict(full.state_dict())  # checkpoints load and save whole
    image = torch.randn(2, 3, 96, 80)
    features = partial(image)
    for ours, i in zip(features, out_indices):
        torch.testing.assert_close(ours, full(image)[i], rtol=0, atol=0)
    sum(f.square().mean() for f in features).backward()
    # What DDP needs: every parameter that trains gets a gradient, and only those.
    for name, param in partial.named_parameters():
        assert (param.grad is not None and param.grad.abs().sum() > 0) == param.requires_grad, name
    idle = {name for name, param in partial.train().named_parameters() if not param.requires_grad}
    last_scale = max(out_indices) + 1
    runs_all = kind == 'parallel' and last_scale > 1
    skips_scale_4 = not runs_all and last_scale < 4
    assert any(name.startswith('serial_blocks4.') for name in idle) == skips_scale_4
    assert (partial.num_scales_run == 4) == (runs_all or last_scale == 4)


def test_forward_tokens_names_a_number_of_scales_it_cannot_run():
    image = torch.randn(1, 3, 64, 64)
    assert len(CoaT(TINY_LITE).forward_tokens(image, 2)[0]) == 2
    for model, bad in ((CoaT(TINY_LITE), 0), (CoaT(TINY_LITE), 5), (CoaT(TINY_COAT), 2)):
        with pytest.raises(ValueError, match=f'num_scales={bad}'):
            model.forward_tokens(image, bad)


def test_another_backbones_settings_name_delete(tmp_path):
    from mmengine.config import Config
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import DefaultScope

    config = tmp_path / 'user.py'
    config.write_text("_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"
                      f"model = dict(backbone=dict(type='CoaT', arch={TINY_LITE!r}))\n")
    backbone = Config.fromfile(str(config)).model.backbone
    with DefaultScope.overwrite_default_scope('mmdet'):
        with pytest.raises(TypeError, match=r"CoaT takes no depth, norm_cfg, norm_eval, "
                           r"num_stages, style\. .*backbone=dict\(_delete_=True, type='CoaT'"):
            DET_MODELS.build(backbone)


@pytest.fixture
def checkpoint_calls(monkeypatch) -> list:
    """One entry per torch.utils.checkpoint call, as CoaT makes them."""
    calls = []
    real_checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint',
                        lambda *args, **kwargs: calls.append(1) or real_checkpoint(*args, **kwargs))
    return calls


@pytest.mark.parametrize('kind', sorted(TINY_ARCHS))
def test_gradient_checkpointing_is_exact(kind, checkpoint_calls):
    torch.manual_seed(0)
    plain = CoaT(TINY_ARCHS[kind]).train()
    checkpointed = CoaT(TINY_ARCHS[kind], with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 64, 96)
    blocks = sum(TINY_ARCHS[kind]['serial_depths']) + TINY_ARCHS[kind]['parallel_depth']
    results = []
    for model in (plain, checkpointed):
        checkpoint_calls.clear()
        features = model(images)
        # Every block of the checkpointed model runs under torch.utils.checkpoint, none of the
        # other.
        assert len(checkpoint_calls) == (blocks if model is checkpointed else 0)
        sum(f.sum() for f in features).backward()
        results.append((features, {n: p.grad for n, p in model.named_parameters()}))
    with torch.no_grad():
        checkpoint_calls.clear()
        checkpointed(images)
        assert checkpoint_calls == []  # nothing to recompute without a backward
    (plain_out, plain_grads), (cp_out, cp_grads) = results
    for a, b in zip(plain_out, cp_out):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    for name in plain_grads:
        torch.testing.assert_close(plain_grads[name], cp_grads[name], rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_applies_in_eval_mode_with_gradients(checkpoint_calls):
    # Gradients through an eval-mode model (Grad-CAM, input attacks) save memory too, as with
    # mmdet's backbones, and match the plain model's.
    torch.manual_seed(0)
    plain = CoaT(TINY_COAT, drop_path_rate=0.5).eval()
    checkpointed = CoaT(TINY_COAT, drop_path_rate=0.5, with_cp=True).eval()
    checkpointed.load_state_dict(plain.state_dict())
    input_grads = []
    for model in (plain, checkpointed):
        images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1),
                             requires_grad=True)
        model(images)[-1].sum().backward()
        input_grads.append(images.grad)
    blocks = sum(TINY_COAT['serial_depths']) + TINY_COAT['parallel_depth']
    assert len(checkpoint_calls) == blocks
    torch.testing.assert_close(input_grads[0], input_grads[1], rtol=1e-5, atol=1e-6)


def test_official_initialisation():
    """As timm's and the official model: Linear weights trunc_normal(std=0.02) with zero biases,
    unit LayerNorms, class tokens trunc_normal(std=0.02); convolutions keep PyTorch's."""
    torch.manual_seed(0)
    model = CoaTClassifier(TINY_COAT, num_classes=7)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert 0.019 < weights.std() < 0.021 and abs(weights.mean()) < 0.001
    assert all(m.bias is None or not m.bias.any() for m in linears)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all((m.weight == 1).all() and not m.bias.any() for m in norms)
    tokens = torch.cat([getattr(model, f'cls_token{i}').flatten() for i in range(1, 5)])
    assert 0.015 < tokens.std() < 0.025
    assert model.patch_embed1.proj.weight.std() > 0.05  # PyTorch's default, not 0.02


def test_qkv_bias_and_head_dropout_reach_their_layers():
    names = [name for name, _ in CoaT(TINY_COAT, qkv_bias=False).named_parameters()]
    qkv = [name for name in names if '.qkv.' in name]
    assert qkv and all(name.endswith('weight') for name in qkv)
    assert any(name.endswith('.proj.bias') for name in names)  # the other projections keep theirs
    torch.manual_seed(0)
    model = CoaTClassifier(TINY_LITE, num_classes=7, drop_rate=0.5).train()
    images = torch.randn(2, 3, 64, 64)
    assert not torch.equal(model(images), model(images))
    model.eval()
    assert torch.equal(model(images), model(images))


def test_every_drop_path_takes_both_branches_of_its_block():
    """Each block's drop path is applied to its attention and to its MLP branch, and each scale of
    a parallel block uses its own (one that freezing turns off with the scale)."""
    model = CoaT(TINY_COAT, drop_path_rate=0.5).train()
    calls = {}
    for name, module in model.named_modules():
        if type(module).__name__ == 'DropPath':
            module.register_forward_hook(lambda m, i, o, name=name: calls.update(
                {name: calls.get(name, 0) + 1}))
    model(torch.randn(1, 3, 64, 64))
    parallel = [f'parallel_blocks.{i}.drop_path{s}' for i in range(2) for s in (2, 3, 4)]
    serial = [f'serial_blocks{s}.0.drop_path' for s in range(1, 5)]
    assert calls == {name: 2 for name in serial + parallel}


@pytest.mark.parametrize('frozen_stages', [1, 2, 3])
def test_a_parallel_block_drops_paths_in_its_training_scales_only(frozen_stages):
    """Within one parallel block the attention is deterministic: a scale's output repeats exactly
    when its drop path is off, as in the frozen scales (8 images alike twice by chance in a
    training scale: odds 0.25 ** 8)."""
    torch.manual_seed(0)
    model = CoaT(TINY_COAT, frozen_stages=frozen_stages, drop_path_rate=0.5).train()
    sizes = [(8, 8), (4, 4), (2, 2)]
    tokens = [torch.randn(8, 1 + h * w, 32) for h, w in sizes]
    block = model.parallel_blocks[0]
    first, second = block(tokens, sizes), block(tokens, sizes)
    assert [torch.equal(a, b) for a, b in zip(first, second)] == \
        [scale <= frozen_stages for scale in (2, 3, 4)]


def test_drop_path_rate_is_constant_across_blocks():
    model = CoaT(TINY_COAT, drop_path_rate=0.2)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == 'DropPath']
    # one per serial block, one per scale (2-4) of each parallel block
    assert len(rates) == 4 + 2 * 3 and set(rates) == {0.2}


def test_frozen_stages_freeze_scales_and_survive_train():
    model = CoaT(TINY_COAT, frozen_stages=2, drop_path_rate=0.1)
    model.train()
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    for scale in (1, 2):
        for prefix in (f'patch_embed{scale}.', f'cls_token{scale}', f'cpe{scale}.', f'crpe{scale}.',
                       f'serial_blocks{scale}.'):
            assert any(name.startswith(prefix) for name in frozen), prefix
        assert not getattr(model, f'serial_blocks{scale}').training
    assert any(name.startswith('parallel_blocks.0.factoratt_crpe2.') for name in frozen)
    for prefix in ('patch_embed3.', 'serial_blocks4.', 'parallel_blocks.0.factoratt_crpe3.',
                   'parallel_blocks.0.mlp2.'):
        assert not any(name.startswith(prefix) for name in frozen), prefix
    assert model.serial_blocks3.training and model.parallel_blocks[0].mlp2.training
    # Scales 1-3 frozen: the MLP scale 4 shares with them still trains, and with it scale 4.
    three = CoaT(TINY_COAT, frozen_stages=3).train()
    shared_mlp = three.parallel_blocks[0].mlp2
    assert all(p.requires_grad for p in shared_mlp.parameters()) and shared_mlp.training
    assert not any(p.requires_grad for p in three.parallel_blocks[0].factoratt_crpe3.parameters())
    assert all(p.requires_grad for p in three.parallel_blocks[0].factoratt_crpe4.parameters())
    all_frozen = CoaT(TINY_COAT, frozen_stages=4, drop_path_rate=0.5).train()
    assert not any(p.requires_grad for p in all_frozen.parameters())
    for bad in (5, 1.5, None, True):
        with pytest.raises(ValueError, match='frozen_stages'):
            CoaT(TINY_COAT, frozen_stages=bad)


@pytest.mark.parametrize('kind', sorted(TINY_ARCHS))
@pytest.mark.parametrize('frozen_stages', [1, 2, 3, 4])
def test_frozen_scales_are_deterministic_in_train_mode(kind, frozen_stages):
    # Drop path is off in frozen scales, including their branches of the parallel blocks, and on
    # elsewhere (8 images kept alike twice by chance: odds 0.5 ** 16). Scales 2-4 of the parallel
    # blocks mix each other, so there they are deterministic only when all three are frozen.
    torch.manual_seed(0)
    model = CoaT(TINY_ARCHS[kind], frozen_stages=frozen_stages, drop_path_rate=0.5).train()
    images = torch.randn(8, 3, 64, 64)
    first, second = model(images), model(images)
    coscale = TINY_ARCHS[kind]['parallel_depth'] > 0
    for scale in range(4):
        frozen = scale < frozen_stages
        if coscale and scale > 0:
            frozen = frozen_stages == 4
        assert torch.equal(first[scale], second[scale]) == frozen, scale
    if coscale:
        for block in model.parallel_blocks:
            assert [getattr(block, f'drop_path{s}').training for s in (2, 3, 4)] == \
                [s > frozen_stages for s in (2, 3, 4)]


def test_arch_dict_values_may_be_tuples_lists_or_arrays():
    as_arrays = {key: np.array(value) if isinstance(value, list) else value
                 for key, value in TINY_LITE.items()}
    for arch in (as_arrays, {k: tuple(v) if isinstance(v, list) else v
                             for k, v in TINY_LITE.items()}):
        assert CoaT(arch).out_channels == TINY_LITE['embed_dims']


@pytest.mark.parametrize('bad_arch, message', [
    ('huge', 'Unknown CoaT arch'),
    (dict(TINY_LITE, depth=3), 'unknown keys'),
    ({k: v for k, v in TINY_LITE.items() if k != 'mlp_ratios'}, 'missing keys'),
    (dict(TINY_LITE, embed_dims=[16, 24, 32]), r'embed_dims needs 4 ints >= 1'),
    (dict(TINY_LITE, embed_dims=16), r'embed_dims needs 4 ints >= 1 \(one per scale\), got 16'),
    (dict(TINY_LITE, embed_dims=[16.0, 24, 32, 40]), 'embed_dims needs 4 ints'),
    (dict(TINY_LITE, embed_dims=[0, 24, 32, 40]), 'embed_dims needs 4 ints >= 1'),
    (dict(TINY_LITE, embed_dims=[16, 24, 32, 44]), 'not divisible'),
    # An empty scale would leave its CPE/CRPE without gradients: DDP's default refuses that.
    (dict(TINY_LITE, serial_depths=[0, 1, 1, 1]), 'serial_depths needs 4 ints >= 1'),
    (dict(TINY_LITE, mlp_ratios=[0, 2, 2, 2]), 'mlp_ratios needs 4 numbers > 0'),
    (dict(TINY_LITE, mlp_ratios=[0.01, 2, 2, 2]), r'pairs \[\(16, 0.01\)\] give an MLP without'),
    (dict(TINY_LITE, parallel_depth=-2), 'parallel_depth needs an int >= 0'),
    (dict(TINY_LITE, parallel_depth=None), 'parallel_depth needs an int >= 0'),
    (dict(TINY_LITE, num_heads=4), 'num_heads=8'),
    (dict(TINY_LITE, num_heads='8'), "num_heads='8'.*use num_heads=8"),
    (dict(TINY_LITE, parallel_depth=1), 'parallel blocks share one MLP'),
])
def test_bad_arch_is_rejected_clearly(bad_arch, message):
    with pytest.raises(ValueError, match=message):
        CoaT(bad_arch)


def test_classifier_heads():
    lite = CoaTClassifier(TINY_LITE, num_classes=7)
    parallel = CoaTClassifier(TINY_COAT, num_classes=7)
    assert not hasattr(lite, 'aggregate') and hasattr(parallel, 'aggregate')
    for model in (lite, parallel):
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    with pytest.raises(TypeError, match='takes no out_indices'):
        CoaTClassifier(TINY_LITE, out_indices=(0, ))
    # timm's num_classes=0 (features only) would build a head with no outputs here.
    for num_classes in (0, -1, 2.5):
        with pytest.raises(ValueError, match=rf'num_classes={num_classes}: .*use the backbone'):
            CoaTClassifier(TINY_LITE, num_classes=num_classes)


@pytest.mark.parametrize('rate', [-0.1, 1.0, 1.5])
def test_drop_path_rate_out_of_range_is_named(rate):
    with pytest.raises(ValueError, match=rf'drop_path_rate={rate}: use a probability in \[0, 1\)'):
        CoaT(TINY_LITE, drop_path_rate=rate)


@pytest.mark.parametrize('scope', [None, 'mmdet', 'mmseg'])
def test_builds_from_registry_in_each_scope(scope):
    from importlib import import_module

    from mmengine.registry import DefaultScope
    cfg = dict(type='CoaT', arch=TINY_LITE, out_indices=(0, 1, 2, 3))
    if scope is None:
        model = MODELS.build(cfg)
    else:
        registry = import_module(f'{scope}.registry').MODELS
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(cfg)
            classifier = registry.build(dict(type='CoaTClassifier', arch=TINY_LITE, num_classes=3))
        assert isinstance(classifier, CoaTClassifier)
    assert isinstance(model, CoaT)


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours.float() - reference).norm() / reference.norm()).item()


def test_bfloat16_autocast_on_cpu():
    model = CoaT(TINY_COAT).eval()
    images = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        reference = model(images)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = model(images)
    for ours, expected in zip(mixed, reference):
        assert torch.isfinite(ours).all() and _relative_error(ours, expected) < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_amp_training_step_on_gpu(dtype):
    model = CoaT('lite_mini').cuda().train()
    images = torch.randn(2, 3, 256, 320, device='cuda')
    with torch.autocast('cuda', dtype=dtype):
        features = model(images)
    sum(f.float().mean() for f in features).backward()
    assert all(torch.isfinite(f).all() for f in features)
    assert all(p.grad is not None for p in model.parameters())
