"""tools/get_flops.py and coat_backbone.toolkit.analysis: exact against torch's and mmengine's
counters, and the paper's GMACs reproduced."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from coat_backbone import ARCH_SETTINGS, CoaT, CoaTClassifier
from coat_backbone.models.coat import grid_sizes
from coat_backbone.toolkit.analysis import PAPER_GMACS_224, count_complexity, total_cost
from tiny_archs import TINY_ARCHS
from tool_runner import TOOLS, load_tool

get_flops = load_tool('get_flops')


def _torch_macs(model: torch.nn.Module, size) -> int:
    """torch.utils.flop_counter's count (convolutions and matmuls, 2 FLOPs per MAC), an
    independent counter working on the aten operations rather than on modules."""
    model = model.to('meta').eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, *size, device='meta'))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize('arch,size,classifier', [
    ('small', (224, 224), True),  # a published variant with parallel blocks
    ('parallel', (100, 70), False), ('lite', (67, 45), True)])
def test_macs_equal_torch_flop_counter(arch, size, classifier):
    """Same operations counted, so the totals must agree exactly. Neither counts softmax, GELU,
    residual additions or the CRPE product (elementwise); LayerNorm and resizing are kept apart
    in `norm_resize`."""
    arch = TINY_ARCHS.get(arch, arch)
    with torch.device('meta'):
        model = CoaTClassifier(arch) if classifier else CoaT(arch)
    ours = total_cost(count_complexity(model, size))
    assert ours.macs == _torch_macs(model, size)
    assert ours.flops == 2 * ours.macs
    assert ours.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch,size,classifier', [('parallel', (100, 70), False),
                                                  ('lite', (67, 45), True)])
def test_paper_convention_equals_mmengine_flop_analyzer(arch, size, classifier):
    """mmengine's FlopAnalyzer (fvcore's rules: LayerNorm and resizing included) runs the model
    for real; its total must be our paper-convention count."""
    from mmengine.analysis import FlopAnalyzer
    model = (CoaTClassifier if classifier else CoaT)(TINY_ARCHS[arch]).eval()
    analyzer = FlopAnalyzer(model, torch.randn(1, 3, *size))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    assert total_cost(count_complexity(model, size)).paper_macs == analyzer.total()


@pytest.mark.parametrize('arch', sorted(ARCH_SETTINGS))
def test_paper_gmacs(arch):
    """The paper's GMACs count LayerNorm and bilinear resizing as fvcore does: with them the
    counts agree within 0.2% (the table rounds to 0.01); the MACs alone are 0.4-0.8% lower."""
    with torch.device('meta'):
        model = CoaTClassifier(arch)
    total = total_cost(count_complexity(model, (224, 224)))
    paper = PAPER_GMACS_224[arch]
    assert abs(total.paper_macs / 1e9 / paper - 1) <= 0.002
    assert 0.99 * paper <= total.macs / 1e9 < paper


def test_scales_and_shared_parameters():
    with torch.device('meta'):
        model = CoaT(TINY_ARCHS['parallel'])
    rows = count_complexity(model, (64, 96))
    assert all(rows[f'scale{i}'].macs > 0 for i in range(1, 5))
    # The shared parallel MLPs are parameters of their own row; their MACs go to scales 2-4.
    assert rows['shared_mlp'].params > 0 and rows['shared_mlp'].macs == 0
    assert rows['head'].params == 0
    assert grid_sizes(64, 96) == [(16, 24), (8, 12), (4, 6), (2, 3)]
    with pytest.raises(ValueError, match='at least 32'):
        grid_sizes(31, 64)


def test_cli_arch_and_config(tmp_path, capsys):
    assert get_flops.main(['--arch', repr(TINY_ARCHS['lite']), '--shape', '64', '96']) == 0
    out = capsys.readouterr().out
    assert 'input 3x64x96' in out and 'multiply-accumulates' in out
    assert [line.split()[0] for line in out.splitlines()[2:7]] == \
        ['scale1', 'scale2', 'scale3', 'scale4', 'total']

    # A detection config: only its backbone is built, without loading init_cfg's checkpoint.
    config = tmp_path / 'det.py'
    config.write_text(
        "custom_imports = dict(imports=['coat_backbone'], allow_failed_imports=False)\n"
        f"model = dict(type='MaskRCNN', backbone=dict(type='CoaT', arch={TINY_ARCHS['lite']!r}, "
        "init_cfg=dict(type='Pretrained', checkpoint='no/such/file.pth')))\n")
    assert get_flops.main([str(config)]) == 0
    assert 'input 3x800x1333' in capsys.readouterr().out

    assert get_flops.main(['--arch', 'lite_tiny', '--classifier']) == 0
    assert 'Paper: 1.60 GMACs' in capsys.readouterr().out
    # A custom arch has no paper figure to compare with.
    assert get_flops.main(['--arch', repr(TINY_ARCHS['lite']), '--classifier']) == 0
    assert 'Paper:' not in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    assert get_flops.main([str(tmp_path / 'missing.py')]) == 2
    assert 'missing.py' in capsys.readouterr().err
    # An ImageNet config: the command that counts its classifier.
    assert get_flops.main([str(TOOLS.parent / 'configs/imagenet/coat_tiny_in1k.py')]) == 2
    assert ("coat_tiny_in1k.py is an ImageNet classifier's config (CoaTClassifier); give its arch "
            "instead: --arch 'tiny', with --classifier") in capsys.readouterr().err
    for argv in (['--help'], [], ['cfg.py', '--arch', 'small'],
                 ['--arch', 'small', '--shape', '1', '2', '3'],
                 ['--arch', 'small', '--shape', '16'], ['--arch', 'small', '--shape', '-64', '64']):
        with pytest.raises(SystemExit) as exit_info:
            get_flops.main(argv)
        assert exit_info.value.code == (0 if argv == ['--help'] else 2)
    errors = capsys.readouterr().err
    assert 'either a config or --arch' in errors and '--shape 16: The input 16x16' in errors
    assert '--shape -64 64: The input -64x64 is too small' in errors
