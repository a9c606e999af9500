"""tools/export_onnx.py: ONNX files with dynamic batch, height and width that onnxruntime runs
like PyTorch at sizes other than the traced one, with either exporter."""
import re

import onnx
import pytest
import torch

from coat_backbone import CoaT
from coat_backbone.toolkit.onnx_export import HAS_DYNAMO_EXPORTER, check_onnx, export_onnx
from tiny_archs import TINY_COAT, TINY_LITE
from tool_runner import load_tool

export = load_tool('export_onnx')
# The smallest model that still has every kind of layer: torch.export traces symbolic shapes
# op by op, so the dynamo exporter's time grows with the number of blocks.
MINIMAL_LITE = dict(TINY_LITE, serial_depths=[1, 1, 1, 1])


def _differences(output: str) -> list:
    return [float(line.split('max abs difference ')[1].split()[0])
            for line in output.splitlines() if 'max abs difference' in line]


def _dims(path, which: str) -> list:
    values = getattr(onnx.load(str(path)).graph, which)
    return [[d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            for value in values]


@pytest.mark.skipif(not HAS_DYNAMO_EXPORTER, reason='torch before 2.5 has no dynamo exporter')
def test_dynamo_backbone(tmp_path, capsys):
    out = tmp_path / 'backbone.onnx'
    assert export.main([str(out), '--arch', repr(MINIMAL_LITE), '--shape', '64', '96']) == 0
    printed = capsys.readouterr().out
    assert 'at 64x96' in printed and 'at 81x73' in printed  # traced size, and another
    differences = _differences(printed)
    assert len(differences) == 2 and max(differences) <= 1e-4
    assert _dims(out, 'input') == [['batch', 3, 'height', 'width']]
    assert _dims(out, 'output')[3] == ['batch', 40, '(height//32)', '(width//32)']


@pytest.mark.skipif(HAS_DYNAMO_EXPORTER, reason='this torch has the dynamo exporter')
def test_without_the_dynamo_exporter_torchscript_is_the_default(tmp_path, capsys):
    out = tmp_path / 'backbone.onnx'
    assert export.main([str(out), '--arch', repr(MINIMAL_LITE), '--exporter', 'dynamo']) == 2
    assert 'The dynamo exporter needs torch 2.5 or later' in capsys.readouterr().err
    assert not out.exists()
    assert export.main([str(out), '--arch', repr(MINIMAL_LITE), '--shape', '64']) == 0
    assert 'with the torchscript exporter' in capsys.readouterr().out


def test_torchscript_backbone_and_classifier(tmp_path, capsys):
    backbone = tmp_path / 'backbone.onnx'
    assert export.main([str(backbone), '--arch', repr(TINY_COAT), '--exporter', 'torchscript',
                        '--shape', '96', '--check-shape', '67', '131']) == 0
    printed = capsys.readouterr().out
    assert 'stride4, stride8, stride16, stride32' in printed and 'at 67x131' in printed
    assert max(_differences(printed)) <= 1e-4
    assert _dims(backbone, 'input') == [['batch', 3, 'height', 'width']]

    classifier = tmp_path / 'classifier.onnx'
    assert export.main([str(classifier), '--arch', repr(TINY_COAT), '--classifier',
                        '--exporter', 'torchscript', '--shape', '64']) == 0
    printed = capsys.readouterr().out
    assert 'outputs logits' in printed and max(_differences(printed)) <= 1e-4
    assert _dims(classifier, 'output') == [['batch', 1000]]

    before = backbone.read_bytes()
    assert export.main([str(backbone), '--arch', repr(TINY_COAT), '--exporter',
                        'torchscript']) == 2
    assert 'exists' in capsys.readouterr().err and backbone.read_bytes() == before


def test_the_check_runs_onnxruntime_and_a_mismatch_fails_the_tool(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    model = CoaT(MINIMAL_LITE).eval()
    path = export_onnx(model, tmp_path / 'backbone.onnx', (64, 64), exporter='torchscript')
    ((same, magnitude),) = check_onnx(model, path, [(64, 96)])
    assert same <= 1e-4 and magnitude > 0
    # Another model's weights: the file no longer matches, and the check must see it.
    ((other, _),) = check_onnx(CoaT(MINIMAL_LITE).eval(), path, [(64, 96)])
    assert other > 100 * max(same, 1e-6)

    monkeypatch.setattr(export, 'check_onnx', lambda model, path, sizes: [(0.5, 1.0), (0.0, 1.0)])
    out = tmp_path / 'mismatch.onnx'
    assert export.main([str(out), '--arch', repr(MINIMAL_LITE), '--exporter', 'torchscript',
                        '--shape', '64']) == 1
    assert 'a difference exceeds --atol 0.0001 + --rtol 1e-05' in capsys.readouterr().err
    assert out.is_file()  # kept for inspection


def test_the_input_checkpoint_is_never_overwritten(tmp_path, capsys):
    weights = tmp_path / 'mine.pth'
    torch.save(CoaT(TINY_LITE).state_dict(), weights)
    before = weights.read_bytes()
    # A checkpoint where the output goes, as if it were the input: not replaced, even with --force.
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(weights), '--arch', repr(TINY_LITE), '--exporter', 'torchscript',
                     '--shape', '64', '--force'])
    assert exit_info.value.code == 2
    assert (f'{weights}: the first argument is the ONNX file to write, named *.onnx; the weights '
            f'to export go in --checkpoint.') in capsys.readouterr().err
    assert weights.read_bytes() == before
    # Nor is the --checkpoint file, whatever its name.
    oddly_named = tmp_path / 'mine.onnx'
    oddly_named.write_bytes(before)
    assert export.main([str(oddly_named), '--arch', repr(TINY_LITE), '--checkpoint',
                        str(oddly_named), '--exporter', 'torchscript', '--shape', '64',
                        '--force']) == 2
    assert 'is an input of this command' in capsys.readouterr().err
    assert oddly_named.read_bytes() == before
    # A folder that cannot be made is named before the export.
    assert export.main([str(weights / 'x.onnx'), '--arch', repr(TINY_LITE), '--exporter',
                        'torchscript', '--shape', '64']) == 2
    assert f'{weights} is a file, not a folder' in capsys.readouterr().err


def test_cli_errors(capsys):
    for argv, code in ((['--help'], 0), (['x.onnx'], 2), (['x.onnx', '--arch', 'small',
                                                           '--exporter', 'tvm'], 2)):
        with pytest.raises(SystemExit) as exit_info:
            export.main(argv)
        assert exit_info.value.code == code
    # Named before any export work: sizes under 32 pixels and opsets without half-pixel Resize.
    for options, message in (
            (['--shape', '16'], '--shape 16: The input 16x16 is too small.*at least 32'),
            (['--check-shape', '64', '16'], '--check-shape 64 16: The input 64x16'),
            (['--opset', '9'], '--opset 9: .* needs opset 11 or later')):
        with pytest.raises(SystemExit):
            export.main(['x.onnx', '--arch', 'lite_tiny', *options])
        assert re.search(message, capsys.readouterr().err)
