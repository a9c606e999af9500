"""Throughput and peak memory of the CoaT and CoAtNet backbones against timm's models with the same
weights.

Examples:
    # the README's CPU table: forward+backward at 512x512, batch 2, fp32, eager
    python tools/benchmark.py --archs lite_small small --sizes 512x512:2 --modes fwd+bwd \\
        --iters 5 --implementations coat timm coat_cp
    # classification and detection sizes, fp32 and bf16, eager and compiled, on a GPU
    python tools/benchmark.py --device cuda --sizes 224x224:64 800x1344:2 \\
        --precisions fp32 bf16 --executions eager compiled --implementations coat timm coat_cp
    # CoAtNet at 224 against timm, then its peak memory at detection size per attention mode
    python tools/benchmark.py --archs coatnet_0_rw --sizes 224x224:8
    python tools/benchmark.py --archs coatnet_0_rw --sizes 800x1344:2 --modes fwd+bwd \\
        --attention global window --implementations coat coat_cp --memory-only

Each arch and size is first checked: both models' float32 features must agree to within
1e-5 x max(1, feature magnitude); a speed ratio is reported only where they do. CoAtNet runs in
each --attention mode; timm, and so the check, in global attention, the only one it has. The
implementations' timed steps take turns, so drift within the process favours none of them. Prints
a table and writes everything (environment, checks, results, the device's matmul peak) as JSON.
--memory-only skips the check and the timing: only the peak memory, each configuration alone in
a fresh process on CPU (global attention at 800x1344 needs about 20 GiB for batch 2).
"""
import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import List

import torch

from coat_backbone.models import coat, coatnet
from coat_backbone.models.coat import grid_sizes
from coat_backbone.toolkit.benchmark import (EXECUTIONS, IMPLEMENTATIONS, MODES, PRECISIONS, Case,
                                             format_table, matmul_peak_tflops, profile_step, report,
                                             run_benchmark)
from coat_backbone.toolkit.builder import family_of
from coat_backbone.toolkit.outputs import check_output_file, write_atomically

SIZE = re.compile(r'^(\d+)x(\d+):(\d+)$')


def parse_size(text: str) -> tuple:
    match = SIZE.match(text)
    if not match or min(int(value) for value in match.groups()) <= 0:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not HEIGHTxWIDTH:BATCH, e.g. 800x1216:2 (positive integers)')
    height, width, batch = (int(value) for value in match.groups())
    try:
        grid_sizes(height, width)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f'{text}: {error}')
    return (height, width), batch


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--archs', nargs='+', default=['lite_small', 'small'],
                        help='CoaT or CoAtNet variants (default: lite_small small)')
    parser.add_argument('--sizes', nargs='+', type=parse_size,
                        default=[((224, 224), 8), ((800, 1216), 2)], metavar='HxW:BATCH',
                        help='input sizes and batch sizes (default: 224x224:8 800x1216:2)')
    parser.add_argument('--device', choices=('cpu', 'cuda'),
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--precisions', nargs='+', choices=sorted(PRECISIONS), default=['fp32'],
                        help='fp32, or autocast bf16 / fp16 (default: fp32)')
    parser.add_argument('--executions', nargs='+', choices=EXECUTIONS, default=['eager'],
                        help='eager and/or torch.compile (default: eager)')
    parser.add_argument('--implementations', nargs='+', choices=IMPLEMENTATIONS,
                        default=['coat', 'timm'],
                        help='coat (this backbone), timm, coat_cp (with_cp=True)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps first (default 1)')
    parser.add_argument('--iters', type=int, default=3,
                        help='timed steps of each implementation, taken in turns; median '
                             '(default 3)')
    parser.add_argument('--attention', nargs='+', choices=coatnet.ATTENTION_MODES,
                        default=['global'],
                        help="CoAtNet's attention modes (default: global); window: the mode of "
                             'the detection configs (windows at stride 16, its last block global)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory pass')
    parser.add_argument('--memory-only', action='store_true',
                        help='measure the peak memory alone: no feature check, no timing')
    parser.add_argument('--profile', action='store_true',
                        help="also print torch.profiler's top operators for one step of each "
                             'arch, size and mode of this backbone (fp32, eager)')
    parser.add_argument('--out', type=Path,
                        help='JSON file (default: work_dirs/benchmark/benchmark_<time>.json)')
    parser.add_argument('--force', action='store_true', help='replace an existing --out file')
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.iters < 1:
        parser.error('--warmup and --iters need at least 1 step each')
    if 'timm' not in args.implementations and not args.memory_only:
        parser.error('keep timm in --implementations: the run compares against it')
    if args.memory_only and args.no_memory:
        parser.error('--memory-only and --no-memory leave nothing to measure; give one')
    for arch in args.archs:
        family = family_of(arch)
        try:
            (coatnet if family == 'CoAtNet' else coat).resolve_arch(arch)
        except ValueError as error:
            parser.error(str(error))
        if family == 'CoaT' and args.attention != ['global']:
            parser.error(f'--attention {" ".join(args.attention)}: {arch} is a CoaT, whose '
                         f'attention has one mode; give CoAtNet archs only, or --attention '
                         f'global')
        # timm's CoAtNet, the reference, needs sides divisible by 32.
        odd = [f'{h}x{w}' for (h, w), _ in args.sizes if h % 32 or w % 32]
        if family == 'CoAtNet' and odd and not args.memory_only:
            parser.error(f'--sizes {" ".join(odd)}: timm\'s CoAtNet, the reference, takes sides '
                         f'divisible by 32 only (this backbone pads others inside); use e.g. '
                         f'800x1344')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda, but torch sees no CUDA device; use --device cpu')
    return args


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    stamp = time.strftime('%Y%m%d_%H%M%S')
    out = args.out or Path('work_dirs/benchmark') / f'benchmark_{stamp}.json'
    try:
        check_output_file(out, force=args.force)
    except OSError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    device = torch.device(args.device)
    cases = [Case(arch, size, batch, attention) for arch in args.archs
             for size, batch in args.sizes for attention in args.attention]
    checks, results = run_benchmark(
        cases, device, modes=args.modes, precisions=args.precisions, executions=args.executions,
        implementations=args.implementations, warmup=args.warmup, iters=args.iters,
        memory=not args.no_memory, memory_only=args.memory_only)
    peaks = {precision: matmul_peak_tflops(device, precision) for precision in args.precisions}
    print(format_table(results))
    print('matmul peak TFLOP/s: ' + ', '.join(f'{p} {v:.3f}' for p, v in peaks.items()))
    for check in checks:
        if not check.matches:
            print(f'MISMATCH {check.arch} {check.size}: features differ from timm by '
                  f'{check.relative_error:.2e} (relative); no speed ratio reported.')
    if args.profile:
        for case in cases:
            for mode in args.modes:
                attention = '' if case.attention == 'global' else f' {case.attention}'
                print(f'\nProfile: {case.arch}{attention} {case.batch}x{case.size[0]}x'
                      f'{case.size[1]} {mode}')
                print(profile_step(case.arch, case.size, case.batch, mode, device,
                                   attention=case.attention))
    document = report(checks, results, device, peaks)
    write_atomically(out, lambda path: path.write_text(json.dumps(document, indent=2)),
                     force=args.force)
    print(f'Wrote {out}')
    return 0 if all(check.matches for check in checks) else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
