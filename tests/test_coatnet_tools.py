"""The tools on CoAtNet: get_flops' count (exact against torch's independent FLOP counter, per
attention mode and at sizes that resize the bias tables) and the benchmark's feature check,
timings per attention mode and memory-only pass."""
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from coat_backbone import CoAtNet, CoAtNetClassifier
from coat_backbone.toolkit import benchmark
from coat_backbone.toolkit.analysis import COATNET_ROWS, count_complexity, total_cost
from coat_backbone.toolkit.benchmark import Case, format_table, run_benchmark
from tiny_archs import TINY_COATNET, TINY_COATNETS
from tool_runner import TOOLS, load_tool

get_flops = load_tool('get_flops')
benchmark_tool = load_tool('benchmark')


def _torch_macs(model: torch.nn.Module, size) -> int:
    """torch.utils.flop_counter's count (convolutions and matmuls, attention included)."""
    model = model.to('meta').eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, *size, device='meta'))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize('arch,kwargs,size,classifier', [
    ('coatnet_0_rw', {}, (224, 224), True),  # the pretrained grid: tables as learned
    ('coatnet_0_rw', {}, (256, 320), False),  # tables resized to 16x20 and 8x10
    ('coatnet_rmlp_nano_rw', {}, (288, 224), False),
    ('coatnet_0_rw', dict(attention='window'), (200, 300), False),  # padded windows
    ('bias', dict(attention='window', window_size=3, global_blocks=()), (100, 70), False)])
def test_macs_equal_torch_flop_counter(arch, kwargs, size, classifier):
    arch = TINY_COATNETS.get(arch, arch)
    with torch.device('meta'):
        model = (CoAtNetClassifier if classifier else CoAtNet)(arch, **kwargs)
    rows = count_complexity(model, size)
    assert tuple(rows) == COATNET_ROWS
    ours = total_cost(rows)
    assert ours.macs == _torch_macs(model, size) and ours.flops == 2 * ours.macs
    assert ours.params == sum(p.numel() for p in model.parameters())
    assert all(rows[f'scale{i}'].macs > 0 for i in range(1, 5)) and rows['stem'].conv > 0
    assert (rows['head'].params > 0) == classifier


def test_window_attention_costs_less_than_global_at_detection_size():
    with torch.device('meta'):
        model = CoAtNet('coatnet_0_rw')
        windowed = CoAtNet('coatnet_0_rw', attention='window')
    full = count_complexity(model, (800, 1344))['scale3'].attention
    windows = count_complexity(windowed, (800, 1344))['scale3'].attention
    assert windows < full / 4


def test_get_flops_cli(capsys):
    assert get_flops.main(['--arch', 'coatnet_0_rw', '--classifier']) == 0
    out = capsys.readouterr().out
    assert out.startswith("CoAtNetClassifier(arch='coatnet_0_rw'), input 3x224x224")
    assert [line.split()[0] for line in out.splitlines()[2:9]] == [
        'stem', 'scale1', 'scale2', 'scale3', 'scale4', 'head', 'total']
    assert 'paper MACs' not in out
    config = TOOLS.parent / 'configs' / 'mask_rcnn_coatnet_rmlp_1_rw_fpn_1x.py'
    assert get_flops.main([str(config), '--shape', '800', '1344']) == 0
    assert 'input 3x800x1344' in capsys.readouterr().out
    assert get_flops.main(['--arch', repr(TINY_COATNET)]) == 0
    assert get_flops.main([str(TOOLS.parent / 'configs/imagenet/coatnet_0_rw_in1k.py')]) == 2
    assert ("coatnet_0_rw_in1k.py is an ImageNet classifier's config (CoAtNetClassifier); give "
            "its arch instead: --arch 'coatnet_0_rw', with --classifier") in \
        capsys.readouterr().err


def test_benchmark_checks_against_timm_and_times_each_attention_mode():
    cases = [Case('coatnet_pico_rw', (64, 96), 1, attention)
             for attention in ('global', 'window')]
    checks, results = run_benchmark(cases, torch.device('cpu'), modes=['fwd'], iters=1,
                                    memory=False)
    # One check per arch and size, in global attention.
    assert len(checks) == 1 and checks[0].matches and checks[0].relative_error <= 1e-5
    assert [(r.attention, r.implementation) for r in results] == [
        ('global', 'coat'), ('global', 'timm'), ('window', 'coat')]
    assert all(r.error is None and r.images_per_s > 0 for r in results)
    assert results[0].speedup_vs_timm is not None and results[2].speedup_vs_timm is None
    assert 'window' in format_table(results)


def test_benchmark_memory_only(monkeypatch):
    def no_timing(*args, **kwargs):
        raise AssertionError('a memory-only run timed a step')

    monkeypatch.setattr(benchmark, 'time_once', no_timing)
    monkeypatch.setattr(benchmark, 'check_features', no_timing)
    checks, results = run_benchmark([Case('coatnet_pico_rw', (64, 64), 1, 'window')],
                                    torch.device('cpu'), modes=['fwd+bwd'],
                                    implementations=['coat'], memory_only=True)
    assert checks == [] and len(results) == 1
    assert results[0].peak_memory_mib > 0 and results[0].step_ms == 0
    assert '-' in format_table(results).splitlines()[-1]


def test_benchmark_cli(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert benchmark_tool.main(['--archs', 'coatnet_pico_rw', '--sizes', '64x64:1', '--modes',
                                'fwd', '--iters', '1', '--device', 'cpu', '--no-memory',
                                '--attention', 'global', 'window', '--out', str(out)]) == 0
    document = json.loads(out.read_text())
    assert document['checks'][0]['matches'] is True
    assert [(r['attention'], r['implementation']) for r in document['results']] == [
        ('global', 'coat'), ('global', 'timm'), ('window', 'coat')]


@pytest.mark.parametrize('argv,message', [
    (['--archs', 'small', '--attention', 'window'], 'small is a CoaT, whose attention has one'),
    (['--archs', 'coatnet_0_rw', '--sizes', '800x1333:2'],
     "--sizes 800x1333: timm's CoAtNet, the reference, takes sides divisible by 32"),
    (['--archs', 'coatnet_9_rw'], 'Unknown CoAtNet arch'),
    (['--archs', 'coatnet_0_rw', '--memory-only', '--no-memory'], 'leave nothing to measure')])
def test_benchmark_cli_names_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        benchmark_tool.parse_args(argv + ['--device', 'cpu'])
    assert message in capsys.readouterr().err
