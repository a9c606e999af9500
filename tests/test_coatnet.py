"""The CoAtNet backbone and classifier: exactness against timm at the training size and, through
timm's own table resize, at other sizes; any input size; attention windows; weights in every
format and from the Hub; freezing, checkpointing, drop path, arch validation and registry builds.
"""
import json
import re
import pytest
import timm
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from safetensors.torch import save_model
from timm.layers import resize_rel_pos_bias_table
from timm.layers.pos_embed_rel import gen_relative_position_index
from timm.models.maxxvit import checkpoint_filter_fn, model_cfgs

from coat_backbone import CheckpointError, CoAtNet, CoAtNetClassifier, load_coat_checkpoint
from coat_backbone.models.coatnet import (ARCH_SETTINGS, PIXEL_MEAN_STD, PRETRAINED, Attention,
                                          RelPosBias, arch_of, block_configs,
                                          expand_relative_table, resolve_arch)
from hub_helpers import Repository, hub_env, run_python, serve_hub
from tiny_archs import TINY_COATNET, TINY_COATNET_RMLP, TINY_COATNETS


def _perturbed_timm(name: str, **kwargs) -> torch.nn.Module:
    """timm's classifier with perturbed weights and BatchNorm statistics, so that no norm, bias
    or layer scale is at its trivial initial value."""
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
        for buffer_name, buffer in model.named_buffers():
            if buffer_name.endswith('running_var'):
                buffer.uniform_(0.5, 1.5)
            elif buffer_name.endswith('running_mean'):
                buffer.normal_(0, 0.1)
    return model


def _features_only(name: str, state_dict: dict, **kwargs) -> torch.nn.Module:
    """timm's features_only model (out_indices 1-4: strides 4-32) holding `state_dict`: its
    flattened stages are named stages_<i>."""
    model = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4), **kwargs)
    model.load_state_dict({re.sub(r'^stages\.(\d)\.', r'stages_\1.', key): value
                           for key, value in state_dict.items()
                           if not key.startswith(('norm.', 'head.'))})
    return model.eval()


def _max_difference(ours, theirs) -> float:
    return max((a - b).abs().max().item() for a, b in zip(ours, theirs))


@pytest.mark.parametrize('arch', sorted(ARCH_SETTINGS))
def test_matches_timm_features_and_logits_at_224(arch):
    reference = _perturbed_timm(f'{arch}_224', num_classes=10)
    with torch.device('meta'):  # no initialisation: the weights come next
        classifier = CoAtNetClassifier(arch, num_classes=10)
    classifier.load_state_dict(reference.state_dict(), assign=True)  # timm's keys, strictly
    classifier.eval()
    features = _features_only(f'{arch}_224', reference.state_dict())
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours = CoAtNet.forward(classifier, images)  # the classifier's dense forward is CoAtNet's
        theirs = features(images)
        assert [f.shape for f in ours] == [f.shape for f in theirs]
        assert _max_difference(ours, theirs) <= 1e-5
        # The logits: each model's final norm and head on its last map, as its forward does.
        logits = classifier.head(classifier.norm(ours[-1]))
        expected = reference.forward_head(reference.norm(theirs[-1]))
        assert (logits - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize('arch,size', [('coatnet_nano_rw', (256, 320)),
                                       ('coatnet_rmlp_nano_rw', (288, 288))])
def test_matches_timm_built_for_another_size(arch, size):
    """timm's model built for `size`, its tables resized by its own checkpoint_filter_fn, and
    this backbone holding the 224 weights: the bias-table variant agrees to float rounding of the
    resize (1e-6 relative), the rmlp variant exactly."""
    reference = _perturbed_timm(f'{arch}_224', num_classes=10)
    model = CoAtNet(arch).eval()
    model.load_state_dict({key: value for key, value in reference.state_dict().items()
                           if not key.startswith(('norm.', 'head.'))})
    resized = checkpoint_filter_fn(reference.state_dict(),
                                   timm.create_model(f'{arch}_224', img_size=size))
    features = _features_only(f'{arch}_224', resized, img_size=size)
    images = torch.randn(1, 3, *size)
    with torch.no_grad():
        for ours, theirs in zip(model(images), features(images)):
            tolerance = 0.0 if 'rmlp' in arch else 1e-5 * max(1.0, theirs.abs().max().item())
            assert (ours - theirs).abs().max().item() <= tolerance


@pytest.mark.parametrize('grid', [(16, 20), (10, 10), (14, 20), (50, 84), (3, 1)])
def test_table_resize_is_timms_and_differentiable(grid):
    torch.manual_seed(0)
    rel_pos = RelPosBias(num_heads=3, pretrained_grid=14)
    table = rel_pos.table(grid)
    span = (2 * grid[0] - 1, 2 * grid[1] - 1)
    expected = resize_rel_pos_bias_table(rel_pos.relative_position_bias_table.detach(),
                                         new_window_size=grid,
                                         new_bias_shape=(span[0] * span[1], 3))
    expected = expected.t().reshape(3, *span)
    assert (table - expected).abs().max().item() <= 1e-6 * expected.abs().max().item()
    table.sum().backward()
    assert rel_pos.relative_position_bias_table.grad.abs().sum() > 0


def test_relative_bias_is_gathered_as_timms_index_does():
    table = torch.randn(2, 2 * 5 - 1, 2 * 7 - 1)
    flat = table.flatten(1).t()  # timm's (offsets, heads) layout
    expected = flat[gen_relative_position_index((5, 7)).view(-1)].view(35, 35, 2).permute(2, 0, 1)
    assert torch.equal(expand_relative_table(table, (5, 7)), expected)


def test_holds_no_index_buffers():
    """Only BatchNorm statistics: no N x N int64 relative-position index per block."""
    model = CoAtNet('coatnet_0_rw', attention='window')
    assert {name.rsplit('.', 1)[-1] for name, _ in model.named_buffers()} == {
        'running_mean', 'running_var', 'num_batches_tracked'}


def test_registry_is_timms_configuration():
    for name, settings in ARCH_SETTINGS.items():
        timm_cfg = model_cfgs[name]
        conv, transformer = block_configs(name)
        assert (conv, transformer) == (timm_cfg.conv_cfg, timm_cfg.transformer_cfg), name
        assert tuple(settings['embed_dims']) == timm_cfg.embed_dim
        assert tuple(settings['depths']) == timm_cfg.depths
        assert tuple(settings['stem_width']) == timm_cfg.stem_width
        assert timm_cfg.block_type == ('C', 'C', 'T', 'T') and not timm_cfg.head_hidden_size
    published = {hub_id.split('/')[1] for ids in PRETRAINED.values() for hub_id in ids}
    assert published == set(timm.list_pretrained('coatnet*'))
    assert set(PRETRAINED) <= set(ARCH_SETTINGS) and set(PIXEL_MEAN_STD) == set(ARCH_SETTINGS)
    # timm's input normalisation of the weights, in 0-255 pixel values.
    for name, (mean, std) in PIXEL_MEAN_STD.items():
        config = timm.get_pretrained_cfg(f'{name}_224')
        assert mean == pytest.approx([255 * m for m in config.mean])
        assert std == pytest.approx([255 * s for s in config.std])


@pytest.mark.parametrize('name,expected', [
    ('coatnet_0_rw', ('coatnet_0_rw', 224)), ('coatnet_0_rw_224', ('coatnet_0_rw', 224)),
    ('coatnet_rmlp_2_rw_384', ('coatnet_rmlp_2_rw', 384)),
    ('coatnet_rmlp_1_rw2_224', ('coatnet_rmlp_1_rw2', 224))])
def test_names_with_and_without_their_size(name, expected):
    settings = resolve_arch(name)
    assert (settings['style'], settings['img_size']) == expected
    with torch.device('meta'):
        model = CoAtNet(name, attention='window')
    assert model.window_size == (expected[1] // 16, ) * 2  # the pretrained grid at stride 16


def test_out_channels_and_parameter_count_are_timms():
    model = CoAtNet('coatnet_0_rw')
    assert model.out_channels == [96, 192, 384, 768]
    reference = timm.create_model('coatnet_0_rw_224', features_only=True)
    assert sum(p.numel() for p in model.parameters()) == \
        sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize('kind', sorted(TINY_COATNETS))
@pytest.mark.parametrize('size', [(112, 137), (67, 45), (20, 20), (96, 64)])
def test_any_input_size_is_the_zero_padded_input(kind, size):
    """Sides that are not multiples of 32 are padded at the bottom and right, as mmdet's
    pad_size_divisor=32 pads them; the maps are ceil(side / stride)."""
    model = CoAtNet(TINY_COATNETS[kind]).eval()
    images = torch.randn(1, 3, *size)
    padded = F.pad(images, (0, -size[1] % 32, 0, -size[0] % 32))
    with torch.no_grad():
        features, of_padded = model(images), model(padded)
    for feature, whole, stride, channels in zip(features, of_padded, (4, 8, 16, 32),
                                                model.out_channels):
        rows, columns = -(-size[0] // stride), -(-size[1] // stride)
        assert feature.shape == (1, channels, rows, columns)
        assert torch.equal(feature, whole[:, :, :rows, :columns])


def test_detection_resolution_odd_size_shapes():
    with torch.device('meta'):
        model = CoAtNet(TINY_COATNET, attention='window')
        features = model(torch.empty(1, 3, 803, 1211))
    assert [tuple(f.shape[2:]) for f in features] == [(201, 303), (101, 152), (51, 76), (26, 38)]


def test_an_image_without_its_batch_dimension_is_named():
    with pytest.raises(ValueError, match=r'batch of images \(B, C, H, W\), got shape \(3, 64, 64\)'
                       r'.*unsqueeze\(0\)'):
        CoAtNet(TINY_COATNET)(torch.randn(3, 64, 64))


@pytest.mark.parametrize('kind', sorted(TINY_COATNETS))
def test_windows_equal_global_attention_on_the_pretrained_grid(kind):
    """At 224 the stride-16 map is one 14x14 window: both modes compute the same."""
    torch.manual_seed(0)
    plain = CoAtNet(TINY_COATNETS[kind]).eval()
    windowed = CoAtNet(TINY_COATNETS[kind], attention='window', global_blocks=()).eval()
    windowed.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert _max_difference(plain(images), windowed(images)) == 0.0
        # Elsewhere they differ: windows see their part of the map only.
        bigger = torch.randn(1, 3, 320, 320)
        assert _max_difference(plain(bigger), windowed(bigger)) > 1e-3


def test_a_border_window_attends_to_its_real_positions_only():
    """The padding that completes the border windows is masked: with the rmlp term (the same
    value for the same offset at any grid size) each window, border ones included, equals global
    attention over its part of the map alone."""
    torch.manual_seed(0)
    _, cfg = block_configs('coatnet_rmlp_nano_rw')
    attention = Attention(64, 64, cfg, pretrained_grid=14).eval()
    x = torch.randn(2, 64, 10, 17)
    with torch.no_grad():
        windowed = attention(x, window=(4, 5))
        for top in range(0, 10, 4):
            for left in range(0, 17, 5):
                part = x[:, :, top:top + 4, left:left + 5]
                expected = attention(part)
                got = windowed[:, :, top:top + 4, left:left + 5]
                assert (got - expected).abs().max().item() <= 1e-5


def test_attention_modes_and_global_blocks():
    model = CoAtNet(TINY_COATNET, attention='window')
    windows = [block.window for block in model.stages[2].blocks]
    assert windows == [(14, 14), (14, 14), None]  # the last block stays global by default
    model = CoAtNet(TINY_COATNET, attention='window', window_size=(7, 9), global_blocks=[0])
    assert [block.window for block in model.stages[2].blocks] == [None, (7, 9), (7, 9)]
    assert all(block.window is None for block in model.stages[3].blocks)  # stride 32: global
    assert all(block.window is None for block in CoAtNet(TINY_COATNET).stages[2].blocks)


@pytest.mark.parametrize('kwargs,message', [
    (dict(attention='local'), r"attention='local': use one of \['global', 'window'\]"),
    (dict(window_size=7), "window_size and global_blocks apply to attention='window'"),
    (dict(global_blocks=(1, )), "window_size and global_blocks apply to attention='window'"),
    (dict(attention='window', window_size=0), r'window_size=0: give one int'),
    (dict(attention='window', window_size=(7, 7, 7)), r'window_size=\(7, 7, 7\)'),
    (dict(attention='window', global_blocks=(3, )), r'global_blocks=\(3,\).*0 to 2'),
    (dict(attention='window', global_blocks=(1, 1)), r'global_blocks=\(1, 1\)'),
])
def test_bad_attention_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoAtNet(TINY_COATNET, **kwargs)


@pytest.mark.parametrize('kind', sorted(TINY_COATNETS))
@pytest.mark.parametrize('attention', ['global', 'window'])
def test_every_parameter_gets_a_gradient(kind, attention):
    # 160x208: the stride-16 map (10x13) is neither the pretrained grid nor whole windows.
    model = CoAtNet(TINY_COATNETS[kind], attention=attention,
                    **({'window_size': 4} if attention == 'window' else {})).train()
    loss = sum(f.square().mean() for f in model(torch.randn(2, 3, 160, 208)))
    loss.backward()
    assert [name for name, p in model.named_parameters()
            if p.grad is None or not p.grad.abs().sum() > 0] == []


@pytest.mark.parametrize('out_indices', [(0, 1, 2), (0, 3), (1, ), (0, )])
def test_out_indices_and_only_what_they_need_trains(out_indices):
    torch.manual_seed(0)
    full = CoAtNet(TINY_COATNET).train()
    partial = CoAtNet(TINY_COATNET, out_indices=out_indices).train()
    partial.load_state_dict(full.state_dict())  # checkpoints load and save whole
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        whole = full.eval()(images)
        for ours, index in zip(partial.eval()(images), out_indices):
            assert torch.equal(ours, whole[index])
    features = partial.train()(images)
    assert [f.shape[1] for f in features] == partial.out_channels
    sum(f.square().mean() for f in features).backward()
    for name, param in partial.named_parameters():
        assert (param.grad is not None and param.grad.abs().sum() > 0) == param.requires_grad, name
    assert CoAtNet(TINY_COATNET, out_indices=[3, 0]).out_indices == (0, 3)
    for bad in ((4, ), (1, 1), (), True):
        with pytest.raises(ValueError, match='out_indices'):
            CoAtNet(TINY_COATNET, out_indices=bad)


def test_frozen_stages_and_norm_eval_survive_train():
    model = CoAtNet(TINY_COATNET, frozen_stages=2, drop_path_rate=0.2).train()
    frozen = {name.split('.')[0] + ('.' + name.split('.')[1] if name.startswith('stages') else '')
              for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {'stem', 'stages.0', 'stages.1'}
    assert not model.stem.training and not model.stages[1].training and model.stages[2].training
    assert not CoAtNet(TINY_COATNET, frozen_stages=0).train().stem.norm1.training
    assert all(p.requires_grad for p in CoAtNet(TINY_COATNET, frozen_stages=-1).parameters())
    assert not any(p.requires_grad for p in CoAtNet(TINY_COATNET, frozen_stages=4).parameters())
    norms = CoAtNet(TINY_COATNET, norm_eval=True).train()
    batch_norms = [m for m in norms.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batch_norms and not any(m.training for m in batch_norms)
    assert norms.stages[2].blocks[0].attn.training
    for bad in (5, -2, 1.5, None, True):
        with pytest.raises(ValueError, match='frozen_stages'):
            CoAtNet(TINY_COATNET, frozen_stages=bad)


def test_drop_path_rises_linearly_over_the_blocks():
    model = CoAtNet(TINY_COATNET, drop_path_rate=0.3)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == 'DropPath']
    blocks = sum(TINY_COATNET['depths'])
    expected = torch.linspace(0, 0.3, blocks).tolist()[1:]  # the first block's rate is 0
    # MBConv blocks have one drop path, transformer blocks one per branch.
    assert sorted(set(rates)) == pytest.approx(expected)
    for rate in (-0.1, 1.0):
        with pytest.raises(ValueError, match=rf'drop_path_rate={rate}: use a probability'):
            CoAtNet(TINY_COATNET, drop_path_rate=rate)


@pytest.fixture
def checkpoint_calls(monkeypatch) -> list:
    calls = []
    real_checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint',
                        lambda *args, **kwargs: calls.append(1) or real_checkpoint(*args, **kwargs))
    return calls


@pytest.mark.parametrize('attention', ['global', 'window'])
def test_gradient_checkpointing_is_exact(attention, checkpoint_calls):
    torch.manual_seed(0)
    plain = CoAtNet(TINY_COATNET, attention=attention).train()
    checkpointed = CoAtNet(TINY_COATNET, attention=attention, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 160, 256)
    results = []
    for model in (plain, checkpointed):
        checkpoint_calls.clear()
        features = model(images)
        assert len(checkpoint_calls) == (sum(TINY_COATNET['depths']) if model is checkpointed
                                         else 0)
        sum(f.sum() for f in features).backward()
        results.append((features, {n: p.grad for n, p in model.named_parameters()}))
    with torch.no_grad():
        checkpoint_calls.clear()
        checkpointed(images)
        assert checkpoint_calls == []
    (plain_out, plain_grads), (cp_out, cp_grads) = results
    for a, b in zip(plain_out, cp_out):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    for name in plain_grads:
        torch.testing.assert_close(plain_grads[name], cp_grads[name], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope='module')
def nano_weights(tmp_path_factory):
    """timm classifiers' weights as files: coatnet_nano_rw as .pth and .safetensors,
    coatnet_rmlp_nano_rw (another variant) as .pth."""
    root = tmp_path_factory.mktemp('coatnet_weights')
    nano = _perturbed_timm('coatnet_nano_rw_224')
    torch.save(nano.state_dict(), root / 'nano.pth')
    save_model(nano, str(root / 'nano.safetensors'))
    torch.save(_perturbed_timm('coatnet_rmlp_nano_rw_224').state_dict(), root / 'rmlp.pth')
    return root, nano.state_dict()


@pytest.mark.parametrize('name', ['nano.pth', 'nano.safetensors'])
def test_timm_weights_load_strictly(nano_weights, name):
    root, state_dict = nano_weights
    backbone = CoAtNet('coatnet_nano_rw_224',
                       init_cfg=dict(type='Pretrained', checkpoint=str(root / name)))
    backbone.init_weights()
    loaded = backbone.state_dict()
    assert loaded.keys() == {k for k in state_dict if not k.startswith(('norm.', 'head.'))}
    assert all(torch.equal(loaded[key], state_dict[key]) for key in loaded)
    classifier = CoAtNetClassifier('coatnet_nano_rw')
    load_coat_checkpoint(classifier, root / name)
    assert all(torch.equal(value, state_dict[key])
               for key, value in classifier.state_dict().items())
    # mmseg's pretrained= is the same.
    same = CoAtNet('coatnet_nano_rw', pretrained=str(root / name))
    same.init_weights()
    assert all(torch.equal(value, loaded[key]) for key, value in same.state_dict().items())


def test_another_variants_weights_are_named(nano_weights, tmp_path):
    root, _ = nano_weights
    with pytest.raises(CheckpointError,
                       match=r"The checkpoint is CoAtNet arch='coatnet_rmlp_nano_rw'; build the "
                             r"model with that arch"):
        load_coat_checkpoint(CoAtNet('coatnet_nano_rw'), root / 'rmlp.pth')
    with pytest.raises(CheckpointError, match=r"The checkpoint is CoAtNet arch='coatnet_nano_rw'"):
        load_coat_checkpoint(CoAtNet('coatnet_pico_rw'), root / 'nano.pth')
    # Own widths are named by their settings.
    torch.save(CoAtNet(TINY_COATNET_RMLP).state_dict(), tmp_path / 'tiny.pth')
    with pytest.raises(CheckpointError, match=r"CoAtNet arch=\{'embed_dims': \[16, 32, 64, 96\], "
                       r".*'style': 'coatnet_rmlp_nano_rw'\}"):
        load_coat_checkpoint(CoAtNet(TINY_COATNET), tmp_path / 'tiny.pth')


def test_a_head_of_another_class_count_is_named(nano_weights):
    """timm's ImageNet-12k weights (11821 classes) into a 1000-class classifier, in small."""
    root, state_dict = nano_weights
    classes = state_dict['head.fc.weight'].shape[0]
    with pytest.raises(CheckpointError, match=rf"head has {classes} classes and the model 10: "
                       rf"build it with num_classes={classes}, or .*new_head=True"):
        load_coat_checkpoint(CoAtNetClassifier('coatnet_nano_rw', num_classes=10),
                             root / 'nano.pth')
    fine_tune = CoAtNetClassifier('coatnet_nano_rw', num_classes=10)
    load_coat_checkpoint(fine_tune, root / 'nano.pth', new_head=True)
    assert torch.equal(fine_tune.state_dict()['stem.conv1.weight'], state_dict['stem.conv1.weight'])


def test_arch_is_read_back_from_weights():
    for name in ARCH_SETTINGS:
        with torch.device('meta'):
            assert arch_of(CoAtNetClassifier(name).state_dict()) == name
    # Own widths: their settings, with the first style that builds the same weights
    # (coatnet_rmlp_1_rw2's blocks differ from coatnet_rmlp_0_rw's in nothing with weights).
    assert arch_of(CoAtNet(TINY_COATNET).state_dict()) == TINY_COATNET
    assert arch_of(CoAtNet(TINY_COATNET_RMLP).state_dict()) == TINY_COATNET_RMLP
    assert arch_of(CoAtNet(dict(TINY_COATNET, style='coatnet_rmlp_1_rw2')).state_dict()) == dict(
        TINY_COATNET, style='coatnet_rmlp_0_rw')
    assert arch_of({'conv1.weight': torch.zeros(1)}) is None


HUB_CLIENT = '''
import json, sys
from coat_backbone import CheckpointError, CoAtNet
results = {}
for arch, name in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        model = CoAtNet(arch, init_cfg=dict(type='Pretrained', checkpoint=name))
        model.init_weights()
        results[arch] = float(sum(p.double().sum() for p in model.state_dict().values()))
    except CheckpointError as error:
        results[arch] = 'error: ' + str(error)
print(json.dumps(results))
'''


def test_hub_weights_load(nano_weights, tmp_path):
    """timm's Hub name for the weights, read by the real huggingface_hub client from a stand-in
    Hub; another variant's weights under it are named."""
    root, state_dict = nano_weights
    name = 'hf-hub:timm/coatnet_nano_rw_224.sw_in1k'
    assert name in PRETRAINED['coatnet_nano_rw']
    repos = {'timm/coatnet_nano_rw_224.sw_in1k': Repository(
        {'model.safetensors': (root / 'nano.safetensors').read_bytes()})}
    with serve_hub(repos) as hub:
        result = run_python(HUB_CLIENT, hub_env(tmp_path / 'hf', hub.url),
                            'coatnet_nano_rw', name, 'coatnet_rmlp_nano_rw', name)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    expected = sum(value.double().sum() for key, value in state_dict.items()
                   if not key.startswith(('norm.', 'head.')))
    assert loaded['coatnet_nano_rw'] == pytest.approx(float(expected), rel=1e-12)
    assert "The checkpoint is CoAtNet arch='coatnet_nano_rw'" in loaded['coatnet_rmlp_nano_rw']


def test_init_cfg_and_pretrained_checks(tmp_path):
    with pytest.raises(ValueError, match='CoAtNet got both pretrained'):
        CoAtNet(TINY_COATNET, pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b'))
    model = CoAtNet(TINY_COATNET, init_cfg=dict(type='Pretrained'))
    with pytest.raises(ValueError, match=r"CoAtNet init_cfg dict\(type='Pretrained'\) has no "
                                         r"checkpoint"):
        model.init_weights()
    # A Pretrained entry among others is applied last, by the project's loader.
    torch.save(CoAtNet(TINY_COATNET).state_dict(), tmp_path / 'tiny.pth')
    model = CoAtNet(TINY_COATNET, init_cfg=[
        dict(type='Constant', layer='Conv2d', val=0.0),
        dict(type='Pretrained', checkpoint=str(tmp_path / 'tiny.pth'))])
    model.init_weights()
    assert model.stem.conv1.weight.abs().sum() > 0


def test_another_backbones_settings_name_delete(tmp_path):
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    config = tmp_path / 'user.py'
    config.write_text("_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"
                      f"model = dict(backbone=dict(type='CoAtNet', arch={TINY_COATNET!r}))\n")
    backbone = Config.fromfile(str(config)).model.backbone
    with DefaultScope.overwrite_default_scope('mmdet'):
        with pytest.raises(TypeError, match=r"CoAtNet takes no depth, norm_cfg, num_stages, "
                           r"style\. .*backbone=dict\(_delete_=True, type='CoAtNet'"):
            DET_MODELS.build(backbone)


@pytest.mark.parametrize('scope', [None, 'mmdet', 'mmseg'])
def test_builds_from_registry_in_each_scope(scope):
    from importlib import import_module

    from mmengine.registry import DefaultScope
    cfg = dict(type='CoAtNet', arch=TINY_COATNET, attention='window')
    if scope is None:
        model = MODELS.build(cfg)
    else:
        registry = import_module(f'{scope}.registry').MODELS
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(cfg)
            classifier = registry.build(dict(type='CoAtNetClassifier', arch=TINY_COATNET,
                                             num_classes=3))
        assert isinstance(classifier, CoAtNetClassifier)
    assert isinstance(model, CoAtNet)


@pytest.mark.parametrize('bad_arch, message', [
    ('coatnet_9_rw', 'Unknown CoAtNet arch'),
    ('coatnet_0_rw_384',
     r"Unknown CoAtNet arch 'coatnet_0_rw_384'.*coatnet_rmlp_2_rw\[_224\|_384\]"),
    ('coatnet_0_224', 'Unknown CoAtNet arch'),
    (dict(TINY_COATNET, heads=3), r"unknown keys \['heads'\]"),
    ({k: v for k, v in TINY_COATNET.items() if k != 'style'}, r"missing keys \['style'\]"),
    (dict(TINY_COATNET, style='resnet50'), "Unknown CoAtNet arch 'resnet50'"),
    (dict(TINY_COATNET, style=None), 'style=None: give the name of the variant'),
    (dict(TINY_COATNET, embed_dims=[16, 32, 64]), 'embed_dims needs 4 ints >= 1'),
    (dict(TINY_COATNET, depths=[1, 0, 1, 1]), 'depths needs 4 ints >= 1'),
    (dict(TINY_COATNET, embed_dims=[16, 32, 48, 96]), r'embed_dims \[48\] are not multiples of '
                                                      r'the attention head width 32'),
    (dict(TINY_COATNET, stem_width=[8, 8, 8]), 'stem_width needs 1 or 2 ints'),
    (3, 'CoAtNet arch must be a name or a dict'),
])
def test_bad_arch_is_rejected_clearly(bad_arch, message):
    with pytest.raises((ValueError, TypeError), match=message):
        CoAtNet(bad_arch)


def test_arch_dict_takes_lists_tuples_and_one_stem_width():
    model = CoAtNet(dict(TINY_COATNET, embed_dims=(16, 32, 64, 96), stem_width=16))
    assert model.out_channels == [16, 32, 64, 96] and model.stem.conv1.out_channels == 16


def test_classifier_head_and_checks():
    model = CoAtNetClassifier(TINY_COATNET, num_classes=7, drop_rate=0.5)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    assert {key.split('.')[0] for key in model.state_dict()} == {'stem', 'stages', 'norm', 'head'}
    with pytest.raises(TypeError, match='takes no out_indices'):
        CoAtNetClassifier(TINY_COATNET, out_indices=(0, ))
    for num_classes in (0, 2.5, True):
        with pytest.raises(ValueError, match=rf'num_classes={num_classes}: .*CoAtNet'):
            CoAtNetClassifier(TINY_COATNET, num_classes=num_classes)


def test_bfloat16_autocast_on_cpu():
    model = CoAtNet(TINY_COATNET, attention='window', window_size=3).eval()
    images = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        reference = model(images)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = model(images)
    for ours, expected in zip(mixed, reference):
        relative = ((ours.float() - expected).norm() / expected.norm()).item()
        assert torch.isfinite(ours).all() and relative < 0.05
