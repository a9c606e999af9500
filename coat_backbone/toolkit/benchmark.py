"""Speed and memory of the CoaT and CoAtNet backbones, side by side with timm's models holding the
same weights.

For every arch and input shape, the reference (timm's `CoaT`, numerically the official model, or
timm's CoAtNet built for that input size, its bias tables resized by its `checkpoint_filter_fn`)
is built from this backbone's own weights and both run the same images. Their float32 features
are compared first: a speed ratio is reported only where they match (`FEATURE_TOLERANCE`).
CoAtNet cases also name their attention mode (`Case.attention`): the check compares the global
mode, the only one timm has, and timm is timed in that mode only; window-mode rows have memory and
speed but no ratio. `memory_only` measures the peak memory alone (no check, no timing), for
configurations too large to run twice at once on the machine.
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
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import timm
import torch
import torch._dynamo
import torch.nn as nn
from mmengine.logging import print_log
from timm.models.coat import CoaT as TimmCoaT
from timm.models.maxxvit import checkpoint_filter_fn as coatnet_filter_fn

from ..models.coat import CoaT, Size
from ..models.coatnet import CoAtNet
from .analysis import count_complexity, total_cost
from .builder import family_of

MODES = ('fwd', 'fwd+bwd')
PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
EXECUTIONS = ('eager', 'compiled')
# `coat` is this project's backbone (CoaT or CoAtNet), `coat_cp` the same with gradient
# checkpointing (with_cp=True).
IMPLEMENTATIONS = ('coat', 'timm', 'coat_cp')
# Largest feature difference allowed, relative to the features' magnitude when that exceeds 1:
# max|coat - timm| <= FEATURE_TOLERANCE * max(1, max|timm|), for each of the four maps.
FEATURE_TOLERANCE = 1e-5
# What one configuration may fail with (compilation, an unsupported precision, out of memory, a
# recompilation past dynamo's limit) without stopping the others.
# What a configuration's step may raise (an out-of-memory error is a RuntimeError); torch 2.1 has
# no recompile-limit error: there a group relies on the reset alone (it needs at most two graphs
# per code object, under dynamo's limit of eight).
_RECOMPILE_LIMIT_HIT = getattr(torch._dynamo.exc, 'FailOnRecompileLimitHit', None)
STEP_ERRORS = (RuntimeError,) + ((_RECOMPILE_LIMIT_HIT,) if _RECOMPILE_LIMIT_HIT else ())
_FAIL_ON_RECOMPILE_LIMIT = ({'fail_on_recompile_limit_hit': True} if _RECOMPILE_LIMIT_HIT
                            else {})


@dataclass
class Case:
    """One benchmark shape: arch, input size and batch, and for CoAtNet its attention mode."""
    arch: str
    size: Size
    batch: int
    attention: str = 'global'


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
    attention: str = 'global'


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
    """timm's model returning the four NCHW maps (strides 4-32), as this backbone does.
    `indices`: timm's indices of those maps (CoAtNet's stem is index 0)."""

    def __init__(self, model: nn.Module, indices: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        self.model = model
        self.indices = indices

    def forward(self, images: torch.Tensor) -> List[torch.Tensor]:
        if self.indices is None:
            return self.model.forward_intermediates(images, intermediates_only=True)
        return self.model.forward_intermediates(images, indices=list(self.indices),
                                                intermediates_only=True)


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


def timm_coatnet_reference(model: CoAtNet, size: Size) -> TimmFeatures:
    """timm's CoAtNet of the same variant built for inputs of `size` (global attention, tables
    resized by timm's checkpoint_filter_fn), holding `model`'s weights. Variants only: timm has
    no model for a CoAtNet of other widths."""
    settings = model.arch_settings
    reference = timm.create_model(f"{settings['style']}_{settings['img_size']}", img_size=size,
                                  num_classes=0)
    missing, unexpected = reference.load_state_dict(
        coatnet_filter_fn(model.state_dict(), reference), strict=False)
    # Without classes timm keeps its final norm; the backbone has none.
    if unexpected or any(not key.startswith('norm.') for key in missing):
        raise RuntimeError(f'timm CoAtNet does not take the backbone weights: missing {missing}, '
                           f'unexpected {unexpected}.')
    return TimmFeatures(reference, indices=(1, 2, 3, 4))


def check_features(model: nn.Module, reference: nn.Module, images: torch.Tensor,
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
    model = _build(implementation, case, torch.device('cpu'), _source(case).state_dict())
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


def _source(case: Case, with_cp: bool = False) -> nn.Module:
    """This project's backbone of the case, freshly initialised."""
    if family_of(case.arch) == 'CoAtNet':
        return CoAtNet(case.arch, attention=case.attention, with_cp=with_cp)
    if case.attention != 'global':
        raise ValueError(f"{case.arch} is a CoaT, whose attention has one mode: keep "
                         f"attention='global'.")
    return CoaT(case.arch, with_cp=with_cp)


def _build(implementation: str, case: Case, device: torch.device,
           weights: Dict[str, torch.Tensor]) -> nn.Module:
    if implementation == 'timm':
        model = _source(replace(case, attention='global'))
        model.load_state_dict(weights)
        reference = (timm_coatnet_reference(model, case.size) if isinstance(model, CoAtNet)
                     else timm_reference(model, case.size))
        return reference.to(device)
    model = _source(case, with_cp=implementation == 'coat_cp')
    model.load_state_dict(weights)
    return model.to(device)


def run_benchmark(cases: Sequence[Case], device: torch.device,
                  modes: Sequence[str] = MODES, precisions: Sequence[str] = ('fp32',),
                  executions: Sequence[str] = ('eager',),
                  implementations: Sequence[str] = ('coat', 'timm'),
                  warmup: int = 1, iters: int = 3, memory: bool = True,
                  memory_only: bool = False) -> Tuple[List[FeatureCheck], List[Result]]:
    """Check features, then time every combination; returns the checks and the results.

    A configuration that fails (for example out of memory, or a precision the device lacks) is
    kept with its error instead of stopping the run; one whose memory pass fails keeps its timing.
    timm runs in global attention only: a window-mode case leaves it out. `memory_only`: no check
    and no timing, only the peak memory of each configuration.
    """
    checks, results = [], []
    if memory and device.type == 'cpu' and not cpu_peak_memory_supported():
        print_log('CPU peak memory needs Linux (/proc/self/clear_refs) and glibc; '
                  'skipping the memory pass.', logger='current', level=logging.WARNING)
        memory = False
    checked: Dict[Tuple[str, Size], FeatureCheck] = {}
    for case in cases:
        torch.manual_seed(0)
        source = _source(case)
        weights = source.state_dict()
        images = torch.randn(case.batch, 3, *case.size, device=device)
        key = (case.arch, case.size)
        if not memory_only and key not in checked:  # global attention: the mode timm has
            global_case = replace(case, attention='global')
            checked[key] = check_features(_build('coat', global_case, device, weights),
                                          _build('timm', global_case, device, weights), images,
                                          case.arch)
            checks.append(checked[key])
            print_log(f'{case.arch} {case.size[0]}x{case.size[1]}: features differ from timm by '
                      f'{checked[key].relative_error:.2e} (relative), '
                      f"{'match' if checked[key].matches else 'MISMATCH'}", logger='current')
        forward = total_cost(count_complexity(source, case.size, case.batch)).flops
        for mode, precision, execution in itertools.product(modes, precisions, executions):
            # checkpointing changes nothing without a backward; timm has global attention only
            group = [Result(case.arch, case.size, case.batch, mode, precision, execution,
                            implementation, 0.0, 0.0, 0.0, attention=case.attention)
                     for implementation in implementations
                     if not (implementation == 'coat_cp' and mode == 'fwd')
                     and not (implementation == 'timm' and case.attention != 'global')]
            if memory_only:
                for result in group:
                    _measure_memory(result, _memory_step(result, case, weights, images, device),
                                    case, device)
                results += group
                continue
            steps = _time_interleaved(group, case, device, weights, images,
                                      forward * STEP_FLOPS_PER_FORWARD[mode], warmup, iters)
            results += group
            if memory and execution == 'eager':
                for result in group:
                    if result.error is None:
                        _measure_memory(result, steps[result.implementation], case, device)
    _compare(results, checks)
    return checks, results


@torch._dynamo.config.patch(**_FAIL_ON_RECOMPILE_LIMIT)
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
            model = _build(name, case, device, weights)
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


def _memory_step(result: Result, case: Case, weights: Dict[str, torch.Tensor],
                 images: torch.Tensor, device: torch.device) -> Optional[Callable]:
    """The step whose memory a memory-only run measures: on CUDA one built here, on CPU none (a
    fresh process builds its own)."""
    if device.type != 'cuda':
        return None
    step = make_step(_build(result.implementation, case, device, weights), images, result.mode,
                     result.precision)
    step()  # one-time caches first, as in a timed run
    return step


def _measure_memory(result: Result, step: Optional[Callable], case: Case,
                    device: torch.device) -> None:
    """Fill in the peak memory of a timed configuration; a failure (out of memory, a crashed
    measuring process) leaves it unmeasured with a warning and keeps the timing."""
    try:
        result.peak_memory_mib = (
            cuda_peak_memory(step, device) if device.type == 'cuda' else
            cpu_peak_memory(result.implementation, case, result.mode, result.precision))
        print_log(f'{_label(result)}: peak memory {result.peak_memory_mib:.0f} MiB',
                  logger='current')
    except (RuntimeError, BrokenProcessPool) as error:
        print_log(f'{_label(result)}: peak memory not measured ({_describe(error)})',
                  logger='current', level=logging.WARNING)


def _record_error(result: Result, error: Exception) -> None:
    result.error = _describe(error)
    print_log(f'{_label(result)}: {result.error}', logger='current')


def _describe(error: Exception) -> str:
    """The error's type and the first line of its message, for a table cell or a log line."""
    return f'{type(error).__name__}: {(str(error).splitlines() or [""])[0][:200]}'


def profile_step(arch: str, size: Size, batch: int, mode: str, device: torch.device,
                 rows: int = 15, attention: str = 'global') -> str:
    """torch.profiler's table of the operators taking the most self time in one step of this
    backbone (after one warm-up step): where the time goes."""
    torch.manual_seed(0)
    model = _source(Case(arch, size, batch, attention)).to(device)
    step = make_step(model, torch.randn(batch, 3, *size, device=device), mode, 'fp32')
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
    attention = '' if result.attention == 'global' else f' {result.attention}'
    return (f'{result.arch}{attention} {result.size[0]}x{result.size[1]} b{result.batch} '
            f'{result.mode} {result.precision} {result.execution} {result.implementation}')


def _compare(results: List[Result], checks: List[FeatureCheck]) -> None:
    """Speed ratios against timm where the features matched; checkpointing memory ratios."""
    matched = {(check.arch, check.size) for check in checks if check.matches}
    index = {(r.arch, r.size, r.batch, r.attention, r.mode, r.precision, r.execution,
              r.implementation): r for r in results if r.error is None}
    for result in results:
        key = (result.arch, result.size, result.batch, result.attention, result.mode,
               result.precision, result.execution)
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
    header = ('arch', 'input', 'attention', 'mode', 'prec', 'exec', 'impl', 'img/s', 'ms',
              'TFLOP/s', 'peak MiB', 'vs timm', 'mem vs coat')
    rows = [header]
    for r in results:
        if r.error is not None:
            rows.append((r.arch, f'{r.batch}x{r.size[0]}x{r.size[1]}', r.attention, r.mode,
                         r.precision, r.execution, r.implementation, 'error', r.error[:40], '',
                         '', '', ''))
            continue
        timed = r.step_ms > 0  # a memory-only run has no timing
        rows.append((r.arch, f'{r.batch}x{r.size[0]}x{r.size[1]}', r.attention, r.mode,
                     r.precision, r.execution, r.implementation,
                     f'{r.images_per_s:.2f}' if timed else '-',
                     f'{r.step_ms:.1f}' if timed else '-',
                     f'{r.tflops_per_s:.3f}' if timed else '-',
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
