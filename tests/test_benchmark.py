"""tools/benchmark.py and coat_backbone.toolkit.benchmark: the feature check against timm gates the
speed ratio, every configuration is timed and measured, the JSON is written without clobbering,
and the backbone compiles without graph breaks."""
import json
import logging
from concurrent.futures.process import BrokenProcessPool

import pytest
import torch
from mmengine.logging import MMLogger
from packaging.version import Version
from torch._dynamo.backends.debugging import aot_eager

from coat_backbone import CoaT
from coat_backbone.toolkit import benchmark
from coat_backbone.toolkit.analysis import count_complexity, total_cost
from coat_backbone.toolkit.benchmark import (FEATURE_TOLERANCE, Case, FeatureCheck, check_features,
                                             format_table, run_benchmark, timm_reference)
from tiny_archs import TINY_ARCHS
from tool_runner import load_tool

benchmark_tool = load_tool('benchmark')


@pytest.mark.parametrize('kind', sorted(TINY_ARCHS))
def test_timm_reference_holds_the_same_weights(kind):
    model = CoaT(TINY_ARCHS[kind]).eval()
    reference = timm_reference(model, (64, 96))
    ours = dict(model.state_dict())
    theirs = reference.model.state_dict()
    assert all(torch.equal(value, theirs[key]) for key, value in ours.items())
    check = check_features(model, reference, torch.randn(2, 3, 64, 96), kind)
    assert check.matches and check.relative_error <= FEATURE_TOLERANCE
    assert len(check.max_abs_diff) == 4 and min(check.max_abs_value) > 0


def test_a_mismatch_withholds_the_speed_ratio(monkeypatch):
    """A reference that computes something else must fail the check, and then no ratio."""
    real_reference = benchmark.timm_reference

    def perturbed(model, size):
        reference = real_reference(model, size)
        with torch.no_grad():
            reference.model.serial_blocks4[0].mlp.fc2.bias.add_(1e-2)
        return reference

    monkeypatch.setattr(benchmark, 'timm_reference', perturbed)
    checks, results = run_benchmark([Case('lite_tiny', (64, 64), 1)], torch.device('cpu'),
                                    modes=['fwd'], iters=1, memory=False)
    assert not checks[0].matches and checks[0].relative_error > FEATURE_TOLERANCE
    assert [r.implementation for r in results] == ['coat', 'timm']
    assert all(r.speedup_vs_timm is None for r in results)


def test_every_configuration_is_timed_and_measured():
    checks, results = run_benchmark(
        [Case('lite_tiny', (192, 192), 2)], torch.device('cpu'),
        implementations=['coat', 'timm', 'coat_cp'], iters=1)
    assert checks[0].matches
    # fwd: coat and timm; fwd+bwd: coat, timm and the checkpointed coat
    assert [(r.mode, r.implementation) for r in results] == [
        ('fwd', 'coat'), ('fwd', 'timm'),
        ('fwd+bwd', 'coat'), ('fwd+bwd', 'timm'), ('fwd+bwd', 'coat_cp')]
    for result in results:
        assert result.error is None and result.images_per_s > 0 and result.tflops_per_s > 0
        assert result.peak_memory_mib is not None and result.peak_memory_mib > 0
        assert (result.speedup_vs_timm is None) == (result.implementation == 'timm')
    training = {r.implementation: r for r in results if r.mode == 'fwd+bwd'}
    # Backward keeps the forward's activations; checkpointing keeps a fraction of them.
    assert training['coat'].peak_memory_mib > results[0].peak_memory_mib
    assert training['coat_cp'].memory_vs_coat < 0.9
    table = format_table(results)
    assert len(table.splitlines()) == 2 + len(results) and 'coat_cp' in table
    # The figures follow from the step time: images/s, FLOP/s (a backward costs two forwards)
    # and the ratio to timm's images/s in the same mode.
    forward_flops = total_cost(count_complexity(CoaT('lite_tiny'), (192, 192), 2)).flops
    timm_rate = {r.mode: r.images_per_s for r in results if r.implementation == 'timm'}
    for result in results:
        seconds = result.step_ms / 1e3
        assert result.images_per_s == pytest.approx(2 / seconds)
        passes = 3 if result.mode == 'fwd+bwd' else 1
        assert result.tflops_per_s == pytest.approx(forward_flops * passes / seconds / 1e12)
        if result.implementation != 'timm':
            assert result.speedup_vs_timm == pytest.approx(
                result.images_per_s / timm_rate[result.mode])


@pytest.mark.parametrize('largest_output', [0.5, 1000.0])
def test_feature_tolerance_is_relative_to_outputs_above_one(largest_output):
    """max|coat - timm| <= 1e-5 x max(1, max|timm|) on every map."""
    scale = max(1.0, largest_output)

    def check(differences):
        return FeatureCheck('lite_tiny', (64, 64), [d * scale for d in differences],
                            [largest_output] * 4)

    assert check([0.9e-5, 0.0, 0.5e-5, 0.9e-5]).matches
    assert not check([0.9e-5, 1.1e-5, 0.0, 0.0]).matches


def test_cpu_memory_pass_is_skipped_with_a_warning_where_unsupported(monkeypatch):
    def no_fresh_process(*args, **kwargs):
        raise AssertionError('the memory pass ran although it is unsupported')

    monkeypatch.setattr(benchmark, 'cpu_peak_memory_supported', lambda: False)
    monkeypatch.setattr(benchmark, 'cpu_peak_memory', no_fresh_process)
    warnings = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        _, results = run_benchmark([Case('lite_tiny', (64, 64), 1)], torch.device('cpu'),
                                   modes=['fwd'], iters=1)
    finally:
        logger.removeHandler(handler)
    assert all(r.error is None and r.peak_memory_mib is None for r in results)
    assert any('skipping the memory pass' in message for message in warnings), warnings


def test_a_failing_memory_pass_keeps_the_timings(monkeypatch):
    def crashed(*args, **kwargs):
        raise BrokenProcessPool('simulated: the measuring process died')

    monkeypatch.setattr(benchmark, 'cpu_peak_memory', crashed)
    _, results = run_benchmark([Case('lite_tiny', (64, 64), 1)], torch.device('cpu'),
                               modes=['fwd'], iters=1)
    assert [r.implementation for r in results] == ['coat', 'timm']
    assert all(r.error is None and r.images_per_s > 0 and r.peak_memory_mib is None
               for r in results)


def test_a_failing_configuration_is_reported_not_fatal(monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError('simulated: no memory left')

    monkeypatch.setattr(benchmark, 'time_once', out_of_memory)
    _, results = run_benchmark([Case('lite_tiny', (64, 64), 1)], torch.device('cpu'),
                               modes=['fwd'], iters=1)
    assert all('simulated' in r.error for r in results)
    assert 'error' in format_table(results)


def test_implementations_take_turns_and_one_failing_midway_spares_the_others(monkeypatch):
    """Timed steps rotate through the implementations, so drift in the process cannot favour
    the one timed last; an error in a timed step ends only that implementation."""
    real_make_step, real_time_once = benchmark.make_step, benchmark.time_once
    calls = []

    def tagged_make_step(model, *args):
        step = real_make_step(model, *args)
        step.implementation = ('timm' if isinstance(model, benchmark.TimmFeatures)
                               else 'coat_cp' if model.with_cp else 'coat')
        return step

    def recording_time_once(step, device):
        calls.append(step.implementation)
        if step.implementation == 'timm' and calls.count('timm') == 3:  # 2nd timed step
            raise torch.cuda.OutOfMemoryError('simulated: no memory left')
        return real_time_once(step, device)

    monkeypatch.setattr(benchmark, 'make_step', tagged_make_step)
    monkeypatch.setattr(benchmark, 'time_once', recording_time_once)
    _, results = run_benchmark([Case('lite_tiny', (64, 64), 1)], torch.device('cpu'),
                               modes=['fwd+bwd'], implementations=['coat', 'timm', 'coat_cp'],
                               iters=3, memory=False)
    assert calls == ['coat', 'timm', 'coat_cp',  # warm-up
                     'coat', 'timm', 'coat_cp',
                     'timm',  # fails; the round goes on without it
                     'coat_cp', 'coat',
                     'coat', 'coat_cp']
    by_name = {r.implementation: r for r in results}
    assert 'simulated' in by_name['timm'].error
    assert all(by_name[name].error is None and by_name[name].images_per_s > 0
               for name in ('coat', 'coat_cp'))
    assert all(r.speedup_vs_timm is None for r in results)


def test_cli_writes_json_and_never_replaces_it(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    # Memory, measured in spawned processes, is test_every_configuration_is_timed_and_measured's.
    args = ['--archs', 'lite_tiny', '--sizes', '64x64:1', '--modes', 'fwd', '--iters', '1',
            '--device', 'cpu', '--no-memory', '--out', str(out)]
    assert benchmark_tool.main(args + ['--profile']) == 0
    document = json.loads(out.read_text())
    assert document['environment']['device'] == 'cpu'
    assert document['checks'][0]['matches'] is True
    assert {r['implementation'] for r in document['results']} == {'coat', 'timm'}
    assert document['matmul_peak_tflops']['fp32'] > 0
    printed = capsys.readouterr().out
    assert 'vs timm' in printed
    assert 'Profile: lite_tiny 1x64x64 fwd' in printed and 'Self CPU' in printed
    before = out.read_text()
    assert benchmark_tool.main(args) == 2
    assert 'exists' in capsys.readouterr().err and out.read_text() == before
    assert benchmark_tool.main(args[:-1] + [str(tmp_path), '--force']) == 2
    assert 'is a directory' in capsys.readouterr().err
    # A folder that cannot be made is named before the run, not after it.
    assert benchmark_tool.main(args[:-1] + [str(out / 'bench.json')]) == 2
    captured = capsys.readouterr()
    assert f'{out} is a file, not a folder' in captured.err and 'vs timm' not in captured.out


@pytest.mark.parametrize('argv,message', [
    (['--sizes', '800x1216'], 'HEIGHTxWIDTH:BATCH'),
    (['--sizes', '16x64:1'], 'at least 32 pixels'),
    (['--archs', 'huge'], 'Unknown CoaT arch'),
    (['--implementations', 'coat'], 'keep timm'),
    (['--iters', '0'], 'at least 1')])
def test_cli_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        benchmark_tool.parse_args(argv + ['--device', 'cpu'])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize('kind', sorted(TINY_ARCHS))
def test_compiles_without_graph_breaks(kind):
    explanation = torch._dynamo.explain(CoaT(TINY_ARCHS[kind]).eval())(torch.randn(1, 3, 64, 64))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_gpu_bf16_compiled_against_timm():
    checks, results = run_benchmark([Case('lite_tiny', (224, 224), 8)], torch.device('cuda'),
                                    precisions=['bf16'], executions=['eager', 'compiled'],
                                    iters=2)
    assert checks[0].matches
    assert all(r.error is None and r.images_per_s > 0 for r in results)
    assert all(r.peak_memory_mib > 0 for r in results if r.execution == 'eager')


def test_every_compiled_configuration_runs_a_compiled_graph(monkeypatch):
    """Dynamo keeps graphs per code object and all CoaTs share one forward: past its recompile
    limit it would run later configurations eagerly under a 'compiled' label. The limit is
    lowered here so that a few cheap configurations reach it (the default, 8, is reached by the
    GPU command of docs/performance.md). torch 2.1's dynamo cannot compile with_cp's checkpointed
    blocks (an internal error, which the benchmark reports as that configuration's failure):
    there CoaT alone runs, under a limit of 1."""
    events = []

    def recording_backend(graph, example_inputs):
        events.append('graph')
        return aot_eager(graph, example_inputs)  # inductor's path without its slow code generation

    real_compile, real_make_step = torch.compile, benchmark.make_step
    monkeypatch.setattr(benchmark.torch, 'compile',
                        lambda model: real_compile(model, backend=recording_backend))
    monkeypatch.setattr(benchmark, 'make_step',
                        lambda *args: events.append('step') or real_make_step(*args))
    # The limit's name before torch 2.6: cache_size_limit.
    limit = ('recompile_limit' if hasattr(torch._dynamo.config, 'recompile_limit')
             else 'cache_size_limit')
    torch21 = Version(torch.__version__).release < (2, 2)
    implementations = ['coat'] if torch21 else ['coat', 'coat_cp']
    monkeypatch.setattr(torch._dynamo.config, limit, 1 if torch21 else 2)
    _, results = run_benchmark([Case('lite_tiny', (64, 64), 1)], torch.device('cpu'),
                               executions=['compiled'], implementations=implementations,
                               iters=1, memory=False)
    # fwd: coat; fwd+bwd: coat (and coat_cp). Graphs of CoaT.forward over the limit.
    assert len(results) == 1 + len(implementations)  # coat_cp only trains
    assert all(r.error is None for r in results)
    # Each configuration's first step compiled at least one graph of its own.
    starts = [i for i, event in enumerate(events) if event == 'step'] + [len(events)]
    assert all('graph' in events[a:b] for a, b in zip(starts, starts[1:]))
