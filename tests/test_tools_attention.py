"""tools/visualize_attention.py and coat_backbone.toolkit.attention: the captured maps reproduce
what the model computes, and the tool writes readable PNGs for random weights and for
checkpoints."""
import pytest
import torch
from PIL import Image

from coat_backbone import CoaT, CoaTClassifier
from coat_backbone.toolkit.attention import attention_modules, capture_attention, query_token
from tiny_archs import TINY_ARCHS, TINY_COAT, TINY_LITE
from tool_runner import load_tool

visualize = load_tool('visualize_attention')


def _perturbed(arch) -> CoaT:
    """Random weights large enough that attention is far from uniform."""
    torch.manual_seed(0)
    model = CoaT(arch).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.3)
    return model


@pytest.mark.parametrize('kind', sorted(TINY_ARCHS))
def test_factorized_weights_reproduce_the_attention_output(kind):
    """sum_n w_n v_n + CRPE must equal what the attention feeds its output projection, for every
    query, head and scale: w_n = scale * q . softmax_tokens(K)_n are the model's own weights."""
    model = _perturbed(TINY_ARCHS[kind])
    image = torch.randn(1, 3, 70, 101)
    inputs = {}
    modules = {scale: entries[-1][1] for scale, entries in attention_modules(model).items()}
    handles = [module.proj.register_forward_hook(
        lambda layer, args, out, scale=scale: inputs.__setitem__(scale, args[0][0]))
        for scale, module in modules.items()]
    records, features = capture_attention(model, image)
    for handle in handles:
        handle.remove()
    expected_features = model(image)
    for scale, record in records.items():
        heads, tokens, head_channels = record.q.shape
        projected = inputs[scale].reshape(tokens, heads, head_channels).transpose(0, 1)
        for query in (0, 1, tokens // 2, tokens - 1):
            weights = record.factorized_weights(query)  # (heads, tokens)
            rebuilt = torch.einsum('hn,hnc->hc', weights, record.v) + record.crpe[:, query]
            torch.testing.assert_close(rebuilt, projected[:, query], rtol=1e-4, atol=1e-5)
            softmax = record.softmax_attention(query)
            torch.testing.assert_close(softmax.sum(-1), torch.ones(heads))
        assert torch.all(record.crpe[:, 0] == 0)  # no CRPE for the class token
        assert record.crpe_magnitude().shape == (heads, tokens)
        torch.testing.assert_close(features[scale - 1], expected_features[scale - 1][0])


def test_block_selection_and_query_mapping():
    model = CoaT(TINY_COAT)
    modules = attention_modules(model)
    assert [name for name, _ in modules[1]] == ['serial_blocks1.0.factoratt_crpe']
    assert [name for name, _ in modules[3]] == [
        'serial_blocks3.0.factoratt_crpe', 'parallel_blocks.0.factoratt_crpe3',
        'parallel_blocks.1.factoratt_crpe3']
    records, _ = capture_attention(model, torch.randn(1, 3, 64, 64), block=0)
    assert records[3].name == 'serial_blocks3.0.factoratt_crpe'
    # A parallel block's number skips scale 1, which runs only its serial block.
    records, _ = capture_attention(model, torch.randn(1, 3, 64, 64), block=2)
    assert {scale: r.name for scale, r in records.items()} == {
        scale: f'parallel_blocks.1.factoratt_crpe{scale}' for scale in (2, 3, 4)}
    with pytest.raises(ValueError, match=r'block=3 is out of range: the scales have scale 1: 1, '
                       r'scale 2: 3, scale 3: 3, scale 4: 3 attentions'):
        capture_attention(model, torch.randn(1, 3, 64, 64), block=3)
    assert query_token(None, (64, 96), (16, 24), 4) == 0
    assert query_token((0, 0), (64, 96), (16, 24), 4) == 1
    assert query_token((95.9, 63.9), (64, 96), (16, 24), 4) == 16 * 24
    with pytest.raises(ValueError, match='outside'):
        query_token((96, 10), (64, 96), (16, 24), 4)
    # 341 rows: 85 patches of 4 pixels at scale 1 and 10 of 32 at scale 4. Pixel row 300 lies
    # in patch 75 (300-303) and in patch 9 (288-319); row 340 lies past the last whole patch.
    assert query_token((0, 300), (341, 512), (85, 128), 4) == 1 + 75 * 128
    assert query_token((0, 300), (341, 512), (10, 16), 32) == 1 + 9 * 16
    assert query_token((0, 340), (341, 512), (10, 16), 32) == 1 + 9 * 16


@pytest.fixture(scope='module')
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp('image') / 'shapes.png'
    canvas = torch.full((60, 90, 3), 230, dtype=torch.uint8)
    canvas[10:40, 15:45] = torch.tensor([200, 40, 40], dtype=torch.uint8)
    canvas[20:55, 55:85] = torch.tensor([40, 90, 200], dtype=torch.uint8)
    Image.fromarray(canvas.numpy()).save(path)
    return path


def _assert_pngs(folder):
    names = sorted(p.name for p in folder.iterdir())
    assert names == ['attention_scale1.png', 'attention_scale2.png', 'attention_scale3.png',
                     'attention_scale4.png', 'features.png']
    for name in names:
        with Image.open(folder / name) as png:
            assert png.format == 'PNG' and png.width >= 200 and png.height >= 100


def test_cli_random_weights(picture, tmp_path, capsys):
    assert visualize.main([str(picture), str(tmp_path / 'random'), '--arch', repr(TINY_COAT),
                           '--query', '20', '15', '--heads', '0', '5', '--max-size', '128',
                           '--dpi', '50']) == 0
    _assert_pngs(tmp_path / 'random')
    assert 'parallel_blocks.1.factoratt_crpe4' in capsys.readouterr().out
    # A second run never replaces the pictures without --force.
    again = [str(picture), str(tmp_path / 'random'), '--arch', repr(TINY_LITE), '--max-size', '64',
             '--dpi', '50']
    before = (tmp_path / 'random' / 'features.png').read_bytes()
    assert visualize.main(again) == 2
    assert 'holds pictures of an earlier run (attention_scale1.png' in capsys.readouterr().err
    assert (tmp_path / 'random' / 'features.png').read_bytes() == before
    assert visualize.main(again + ['--force']) == 0
    assert (tmp_path / 'random' / 'features.png').read_bytes() != before
    assert visualize.main([str(picture), str(picture)] + again[2:]) == 2
    assert f'{picture} is a file, not a folder' in capsys.readouterr().err
    # Checked before the model runs: a folder under a file, and the input among the outputs.
    assert visualize.main([str(picture), str(picture / 'deeper')] + again[2:]) == 2
    assert f'{picture} is a file, not a folder' in capsys.readouterr().err
    own = tmp_path / 'random' / 'features.png'
    before = own.read_bytes()
    assert visualize.main([str(own), str(tmp_path / 'random')] + again[2:] + ['--force']) == 2
    assert f'{own} is an input of this command' in capsys.readouterr().err
    assert own.read_bytes() == before


def test_cli_follows_exif_orientation(tmp_path, capsys):
    # Stored 90 wide and 60 tall, shown rotated (EXIF orientation 6) as 60 wide and 90 tall.
    stored = tmp_path / 'phone.jpg'
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new('RGB', (90, 60), (200, 40, 40)).save(stored, exif=exif)
    # (50, 80) lies inside the picture as shown, outside it as stored.
    assert visualize.main([str(stored), str(tmp_path / 'out'), '--arch', repr(TINY_LITE),
                           '--query', '50', '80', '--max-size', '64', '--dpi', '50']) == 0
    assert visualize.main([str(stored), str(tmp_path / 'out2'), '--arch', repr(TINY_LITE),
                           '--query', '80', '50', '--max-size', '64']) == 2
    assert 'is outside the 60x90 image' in capsys.readouterr().err


def test_cli_checkpoint_and_class_token(picture, tmp_path, capsys):
    checkpoint = tmp_path / 'classifier.pth'
    torch.save({'model': CoaTClassifier(TINY_LITE, num_classes=4).state_dict()}, checkpoint)
    assert visualize.main([str(picture), str(tmp_path / 'ckpt'), '--checkpoint',
                           str(checkpoint), '--arch', repr(TINY_LITE), '--cls', '--heads', '7',
                           '--max-size', '64', '--dpi', '50', '--block', '0']) == 0
    _assert_pngs(tmp_path / 'ckpt')
    bad = [str(picture), str(tmp_path / 'bad'), '--arch', repr(TINY_LITE)]
    assert visualize.main(bad + ['--query', '90', '5']) == 2
    assert 'is outside the 90x60 image' in capsys.readouterr().err
    assert visualize.main(bad + ['--block', '3']) == 2
    assert 'out of range' in capsys.readouterr().err
    # Block 1 exists at scale 2 only; --force drops the earlier run's pictures of other scales.
    assert visualize.main([str(picture), str(tmp_path / 'ckpt'), '--arch', repr(TINY_LITE),
                           '--block', '1', '--max-size', '64', '--dpi', '50', '--force']) == 0
    assert sorted(p.name for p in (tmp_path / 'ckpt').iterdir()) == [
        'attention_scale2.png', 'features.png']
    assert 'Scale 1 has no attention numbered 1: no attention_scale1.png' in (
        capsys.readouterr().out)
    assert visualize.main([str(tmp_path / 'missing.png')] + bad[1:]) == 2
    assert 'missing.png' in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()
    for argv, code in ((bad + ['--heads', '8'], 2), (['--help'], 0)):
        with pytest.raises(SystemExit) as exit_info:
            visualize.main(argv)
        assert exit_info.value.code == code
