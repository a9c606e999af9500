"""Speed and memory of the CoaT backbone, side by side with timm's CoaT holding the same weights.

For every arch and input shape, the reference (timm's `CoaT`, numerically the official model) is
built from this backbone's own weights and both run the same images. Their float32 features
are compared first: a speed ratio is reported only where they match (`FEATURE_TOLERANCE`).
Each case is then timed per mode (`fwd`: eval and no_grad; `fwd+bwd`: train mode, backward of
the sum of the four maps' means), precision (`fp32`, or `bf16` / `fp16` autocast) and execution
(`eager` or `compiled` with `torch.compile`), the implementations taking turns step by step.

Peak memory is the most memory a step holds beyond what was held before it: on CUDA,
`max_memory_allocated`; on CPU, the peak resident set (VmHWM) of a fresh process whose glibc is
told, before anything is allocated, to give freed blocks back to the system, so that resident
memory follows live tensors. (Set later in a process that has already run steps, the same
setting over-reports: the earlier heap stays in the way.) The second step is measured, after one
that fills one-time caches.

Achieved FLOP/s uses the model's multiply-accumulates from `coat_backbone.toolkit.analysis` (forward
FLOPs = 2 x MACs; forward+backward counted as 3 x forward) against the rate of a large matrix
multiply in the same precision on the same device, the practical peak.
"""
import ctypes
import gc
import itertools
import logging
import multiprocessing
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import timm
import torch
import torch.nn as nn
from mmengine.logging import print_log
from timm.models.coat import CoaT as TimmCoaT
from torch._dynamo.exc import FailOnRecompileLimitHit

from ..models.coat import CoaT, Size
from .analysis import count_complexity, total_cost

MODES = ('fwd', 'fwd+bwd')
PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
EXECUTIONS = ('eager', 'compiled')
# `coat_cp` is this backbone with gradient checkpointing (with_cp=True).
IMPLEMENTATIONS = ('coat', 'timm', 'coat_cp')
# Largest feature difference allowed, relative to the features' magnitude when that exceeds 1:
# max|coat - timm| <= FEATURE_TOLERANCE * max(1, max|timm|), for each of the four maps.
FEATURE_TOLERANCE = 1e-5
# What one configuration may fail with (compilation, an unsupported precision, out of memory, a
# recompilation past dynamo's limit) without stopping the others.
STEP_ERRORS = (RuntimeError, torch.OutOfMemoryError, FailOnRecompileLimitHit)


@dataclass
class Case:
    """One benchmark shape: arch, input size and batch."""
    arch: str
    size: Size
    batch: int


@dataclass
class Result:
    """One timed configuration of one implementation."""
    arch: str
    size: Size
    batch: int
    mode: str
    precision: str
    execution: str
    implementation: str
    step_ms: float
    images_per_s: float
    tflops_per_s: float
    peak_memory_mib: Optional[float] = None
    first_step_s: float = 0.0  # the first (warm-up) step; compilation happens there
    speedup_vs_timm: Optional[float] = None
    memory_vs_coat: Optional[float] = None
    error: Optional[str] = None


@dataclass
class FeatureCheck:
    """The float32 comparison of the features of this backbone and timm's, per map."""
    arch: str
    size: Size
    max_abs_diff: List[float] = field(default_factory=list)
    max_abs_value: List[float] = field(default_factory=list)

    @property
    def relative_error(self) -> float:
        return max(diff / max(1.0, value)
                   for diff, value in zip(self.max_abs_diff, self.max_abs_value))

    @property
    def matches(self) -> bool:
        return self.relative_error <= FEATURE_TOLERANCE


class TimmFeatures(nn.Module):
    """timm's CoaT returning the four NCHW maps, as this backbone does."""

    def __init__(self, model: TimmCoaT) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> List[torch.Tensor]:
        return self.model.forward_intermediates(images, intermediates_only=True)


def timm_reference(model: CoaT, size: Size) -> TimmFeatures:
    """timm's CoaT of the same arch, for inputs of `size`, holding `model`'s weights."""
    settings = model.arch_settings
    reference = TimmCoaT(img_size=size, patch_size=4, num_classes=0,
                         embed_dims=settings['embed_dims'],
                         serial_depths=settings['serial_depths'],
                         parallel_depth=settings['parallel_depth'],
                         num_heads=settings['num_heads'], mlp_ratios=settings['mlp_ratios'])
    missing, unexpected = reference.load_state_dict(model.state_dict(), strict=False)
    # Without classes timm keeps its final norms (and aggregate); the backbone has neither.
    if unexpected or any(not key.startswith(('norm', 'aggregate')) for key in missing):
        raise RuntimeError(f'timm CoaT does not take the backbone weights: missing {missing}, '
                           f'unexpected {unexpected}.')
    return TimmFeatures(reference)


def check_features(model: CoaT, reference: nn.Module, images: torch.Tensor,
                   arch: str) -> FeatureCheck:
    """Compare both models' float32 eval features on `images`."""
    check = FeatureCheck(arch, tuple(images.shape[2:]))
    with torch.no_grad():
        for ours, theirs in zip(model.eval()(images), reference.eval()(images)):
            check.max_abs_diff.append((ours.float() - theirs.float()).abs().max().item())
            check.max_abs_value.append(theirs.abs().max().item())
    return check


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_step(model: nn.Module, images: torch.Tensor, mode: str, precision: str) -> Callable:
    """A callable running one forward (or forward+backward) step of `model` on `images`."""
    dtype = PRECISIONS[precision]
    autocast = torch.autocast(images.device.type, dtype=dtype) if dtype != torch.float32 \
        else nullcontext()
    if mode == 'fwd':
        model.eval()

        def step() -> None:
            with torch.no_grad(), autocast:
                model(images)
    else:
        model.train()

        def step() -> None:
            with autocast:
                loss = sum(feature.float().mean() for feature in model(images))
            loss.backward()
            for param in model.parameters():
                param.grad = None
    return step


def time_once(step: Callable, device: torch.device) -> float:
    """Seconds of one call of `step`, waiting for the device to finish."""
    _synchronize(device)
    start = time.perf_counter()
    step()
    _synchronize(device)
    return time.perf_counter() - start


def _status_mib(key: str) -> float:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f'/proc/self/status has no {key}.')


def _cpu_peak_memory_child(implementation: str, case: Case, mode: str, precision: str,
                           threads: int) -> float:
    """Runs in a fresh process: peak resident MiB of one step above the resident memory before."""
    libc = ctypes.CDLL('libc.so.6')
    # mallopt M_TRIM_THRESHOLD (-1) and M_MMAP_THRESHOLD (-3) at 1 MiB: freed large blocks leave
    # the process instead of staying resident for reuse.
    if not (libc.mallopt(-1, 1 << 20) and libc.mallopt(-3, 1 << 20)):
        raise RuntimeError('glibc refused the malloc settings CPU peak memory needs.')
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _build(implementation, case.arch, case.size, torch.device('cpu'),
                   CoaT(case.arch).state_dict())
    step = make_step(model, torch.randn(case.batch, 3, *case.size), mode, precision)
    step()
    gc.collect()
    libc.malloc_trim(0)
    with open('/proc/self/clear_refs', 'w') as clear_refs:
        clear_refs.write('5')  # resets VmHWM to the current resident set (Linux >= 4.0)
    before = _status_mib('VmRSS')
    step()
    return _status_mib('VmHWM') - before


def cpu_peak_memory(implementation: str, case: Case, mode: str, precision: str) -> float:
    """CPU peak memory of one step, measured in a fresh process (see the module docstring)."""
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_cpu_peak_memory_child, implementation, case, mode, precision,
                           torch.get_num_threads()).result()


def cpu_peak_memory_supported() -> bool:
    """CPU peak memory needs Linux's resettable VmHWM and glibc."""
    try:
        with open('/proc/self/clear_refs', 'w') as clear_refs:
            clear_refs.write('5')
        ctypes.CDLL('libc.so.6').mallopt
    except (OSError, AttributeError):
        return False
    return True


def cuda_peak_memory(step: Callable, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20


def matmul_peak_tflops(device: torch.device, precision: str) -> float:
    """TFLOP/s of a large square matrix multiply: the practical compute peak of the device.
    The size doubles until one multiply takes 50 ms, so slow paths (bf16 on a CPU without bf16
    instructions) stay quick to measure and fast ones are measured where they peak."""
    dtype = PRECISIONS[precision]
    size, largest = 256, 8192 if device.type == 'cuda' else 4096
    while True:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        time_once(lambda: a @ b, device)
        seconds = statistics.median(time_once(lambda: a @ b, device) for _ in range(3))
        if seconds >= 0.05 or size >= largest:
            return 2 * size ** 3 / seconds / 1e12
        size *= 2


# FLOPs of a forward+backward step per forward FLOP: the backward costs about twice the forward.
STEP_FLOPS_PER_FORWARD = {'fwd': 1, 'fwd+bwd': 3}


def environment(device: torch.device) -> Dict[str, object]:
    info = {'torch': torch.__version__, 'timm': timm.__version__,
            'python': platform.python_version(),
            'device': device.type, 'cpu': _cpu_name(), 'cpu_threads': torch.get_num_threads()}
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build(implementation: str, arch: str, size: Size, device: torch.device,
           weights: Dict[str, torch.Tensor]) -> nn.Module:
    model = CoaT(arch, with_cp=implementation == 'coat_cp')
    model.load_state_dict(weights)
    if implementation == 'timm':
        return timm_reference(model, size).to(device)
    return model.to(device)


def run_benchmark(cases: Sequence[Case], device: torch.device,
                  modes: Sequence[str] = MODES, precisions: Sequence[str] = ('fp32',),
                  executions: Sequence[str] = ('eager',),
                  implementations: Sequence[str] = ('coat', 'timm'),
                  warmup: int = 1, iters: int = 3, memory: bool = True
                  ) -> Tuple[List[FeatureCheck], List[Result]]:
    """Check features, then time every combination; returns the checks and the results.

    A configuration that fails (for example out of memory, or a precision the device lacks) is
    kept with its error instead of stopping the run; one whose memory pass fails keeps its timing.
    """
    checks, results = [], []
    if memory and device.type == 'cpu' and not cpu_peak_memory_supported():
        print_log('CPU peak memory needs Linux (/proc/self/clear_refs) and glibc; '
                  'skipping the memory pass.', logger='current', level=logging.WARNING)
        memory = False
    for case in cases:
        torch.manual_seed(0)
        source = CoaT(case.arch)
        weights = source.state_dict()
        images = torch.randn(case.batch, 3, *case.size, device=device)
        check = check_features(_build('coat', case.arch, case.size, device, weights),
                               _build('timm', case.arch, case.size, device, weights), images,
                               case.arch)
        checks.append(check)
        print_log(f'{case.arch} {case.size[0]}x{case.size[1]}: features differ from timm by '
                  f'{check.relative_error:.2e} (relative), '
                  f"{'match' if check.matches else 'MISMATCH'}", logger='current')
        forward = total_cost(count_complexity(source, case.size, case.batch)).flops
        for mode, precision, execution in itertools.product(modes, precisions, executions):
            # checkpointing changes nothing without a backward
            group = [Result(case.arch, case.size, case.batch, mode, precision, execution,
                            implementation, 0.0, 0.0, 0.0)
                     for implementation in implementations
                     if not (implementation == 'coat_cp' and mode == 'fwd')]
            steps = _time_interleaved(group, case, device, weights, images,
                                      forward * STEP_FLOPS_PER_FORWARD[mode], warmup, iters)
            results += group
            if memory and execution == 'eager':
                for result in group:
                    if result.error is None:
                        _measure_memory(result, steps[result.implementation], case, device)
    _compare(results, checks)
    return checks, results


@torch._dynamo.config.patch(fail_on_recompile_limit_hit=True)
def _time_interleaved(group: List[Result], case: Case, device: torch.device,
                      weights: Dict[str, torch.Tensor], images: torch.Tensor, flops: float,
                      warmup: int, iters: int) -> Dict[str, Callable]:
    """Time the implementations of one configuration and fill in their results; returns the
    steps that ran to the end, by implementation, for the memory pass.

    All are built and warmed up first, then their timed steps take turns, each round starting
    with the next implementation. Timed one after the other, whichever ran second was up to 7%
    faster on CPU (the process's allocator state drifts), which would show as a speed ratio.
    """
    results = {result.implementation: result for result in group}
    steps: Dict[str, Callable] = {}
    if any(result.execution == 'compiled' for result in group):
        # Compile each group afresh: dynamo caches graphs per code object (every CoaT shares
        # CoaT.forward), and past its recompile limit it would run a later group's models
        # eagerly under a 'compiled' label. A group needs at most two graphs per code object;
        # exceeding the limit anyway is an error of that configuration, not a silent fallback.
        torch._dynamo.reset()
    for name, result in results.items():
        try:
            model = _build(name, case.arch, case.size, device, weights)
            if result.execution == 'compiled':
                model = torch.compile(model)
            step = make_step(model, images, result.mode, result.precision)
            result.first_step_s = time_once(step, device)  # compilation happens here
            for _ in range(warmup - 1):
                step()
        except STEP_ERRORS as error:  # compile, precision, memory
            _record_error(result, error)
            continue
        steps[name] = step
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for round_index in range(iters):
        order = list(steps)
        turn = round_index % max(len(order), 1)
        for name in order[turn:] + order[:turn]:
            try:
                times[name].append(time_once(steps[name], device))
            except STEP_ERRORS as error:
                _record_error(results[name], error)
                del steps[name], times[name]
    for name, step_times in times.items():
        result, seconds = results[name], statistics.median(step_times)
        result.step_ms = seconds * 1e3
        result.images_per_s = case.batch / seconds
        result.tflops_per_s = flops / seconds / 1e12
        print_log(f'{_label(result)}: {result.images_per_s:.2f} images/s', logger='current')
    return steps


def _measure_memory(result: Result, step: Callable, case: Case, device: torch.device) -> None:
    """Fill in the peak memory of a timed configuration; a failure (out of memory, a crashed
    measuring process) leaves it unmeasured with a warning and keeps the timing."""
    try:
        result.peak_memory_mib = (
            cuda_peak_memory(step, device) if device.type == 'cuda' else
            cpu_peak_memory(result.implementation, case, result.mode, result.precision))
    except (RuntimeError, torch.OutOfMemoryError, BrokenProcessPool) as error:
        print_log(f'{_label(result)}: peak memory not measured ({_describe(error)})',
                  logger='current', level=logging.WARNING)


def _record_error(result: Result, error: Exception) -> None:
    result.error = _describe(error)
    print_log(f'{_label(result)}: {result.error}', logger='current')


def _describe(error: Exception) -> str:
    """The error's type and the first line of its message, for a table cell or a log line."""
    return f'{type(error).__name__}: {(str(error).splitlines() or [""])[0][:200]}'


def profile_step(arch: str, size: Size, batch: int, mode: str, device: torch.device,
                 rows: int = 15) -> str:
    """torch.profiler's table of the operators taking the most self time in one step of this
    backbone (after one warm-up step): where the time goes."""
    torch.manual_seed(0)
    step = make_step(CoaT(arch).to(device), torch.randn(batch, 3, *size, device=device), mode,
                     'fp32')
    step()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        step()
        _synchronize(device)
    sort_by = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    return profiler.key_averages().table(sort_by=sort_by, row_limit=rows)


def _label(result: Result) -> str:
    return (f'{result.arch} {result.size[0]}x{result.size[1]} b{result.batch} {result.mode} '
            f'{result.precision} {result.execution} {result.implementation}')


def _compare(results: List[Result], checks: List[FeatureCheck]) -> None:
    """Speed ratios against timm where the features matched; checkpointing memory ratios."""
    matched = {(check.arch, check.size) for check in checks if check.matches}
    index = {(r.arch, r.size, r.batch, r.mode, r.precision, r.execution, r.implementation): r
             for r in results if r.error is None}
    for result in results:
        key = (result.arch, result.size, result.batch, result.mode, result.precision,
               result.execution)
        timm_result = index.get(key + ('timm',))
        if (result.implementation != 'timm' and timm_result is not None
                and result.error is None and (result.arch, result.size) in matched):
            result.speedup_vs_timm = result.images_per_s / timm_result.images_per_s
        plain = index.get(key + ('coat',))
        if (result.implementation != 'coat' and plain is not None
                and result.peak_memory_mib is not None and plain.peak_memory_mib):
            result.memory_vs_coat = result.peak_memory_mib / plain.peak_memory_mib


def format_table(results: Sequence[Result]) -> str:
    """A plain-text table, one row per result."""
    header = ('arch', 'input', 'mode', 'prec', 'exec', 'impl', 'img/s', 'ms', 'TFLOP/s',
              'peak MiB', 'vs timm', 'mem vs coat')
    rows = [header]
    for r in results:
        if r.error is not None:
            rows.append((r.arch, f'{r.batch}x{r.size[0]}x{r.size[1]}', r.mode, r.precision,
                         r.execution, r.implementation, 'error', r.error[:40], '', '', '', ''))
            continue
        rows.append((r.arch, f'{r.batch}x{r.size[0]}x{r.size[1]}', r.mode, r.precision,
                     r.execution, r.implementation, f'{r.images_per_s:.2f}', f'{r.step_ms:.1f}',
                     f'{r.tflops_per_s:.3f}',
                     '-' if r.peak_memory_mib is None else f'{r.peak_memory_mib:.0f}',
                     '-' if r.speedup_vs_timm is None else f'{r.speedup_vs_timm:.2f}x',
                     '-' if r.memory_vs_coat is None else f'{r.memory_vs_coat:.0%}'))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ['  '.join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, '  '.join('-' * width for width in widths))
    return '\n'.join(lines)


def report(checks: Sequence[FeatureCheck], results: Sequence[Result], device: torch.device,
           peaks: Dict[str, float]) -> Dict[str, object]:
    """Everything measured, as one JSON-ready dict."""
    return {'environment': environment(device),
            'matmul_peak_tflops': peaks,
            'feature_tolerance': FEATURE_TOLERANCE,
            'checks': [dict(asdict(check), relative_error=check.relative_error,
                            matches=check.matches) for check in checks],
            'results': [asdict(result) for result in results]}
