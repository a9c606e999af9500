"""Export a CoaT backbone or classifier to ONNX (dynamic batch, height and width) and check it
against PyTorch with onnxruntime at two input sizes.

Examples:
    python tools/export_onnx.py coat_small.onnx --checkpoint hf-hub:timm/coat_small.in1k
    python tools/export_onnx.py coat_lite_small.onnx --config \\
        configs/mask_rcnn_coat_lite_small_fpn_1x.py --checkpoint work_dirs/run/epoch_12.pth
    python tools/export_onnx.py classifier.onnx --arch lite_tiny --classifier --shape 224

Inputs: `img` (N, 3, H, W), normalised like the training data. Outputs: `stride4` ... `stride32`
(the backbone's out_indices, NCHW) or `logits`. Exporters: dynamo (the default from torch 2.5;
torch's supported exporter, slow to trace on a CPU) or torchscript (the default and only one
before torch 2.5; deprecated in torch, much faster); see coat_backbone/toolkit/onnx_export.py.
Needs onnx, onnxruntime and, for dynamo, onnxscript.
"""
import argparse
import sys
import time
from typing import List, Tuple

import torch

from coat_backbone.checkpoint import CheckpointError
from coat_backbone.toolkit.builder import build_model, input_size, parse_arch
from coat_backbone.toolkit.onnx_export import (DEFAULT_EXPORTER, EXPORTERS, check_onnx, export_onnx,
                                               output_names)


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('output', help='ONNX file to write')
    parser.add_argument('--arch', type=parse_arch, help='CoaT variant (random weights unless '
                        '--checkpoint); inferred from --checkpoint when omitted')
    parser.add_argument('--config', help='mmdet / mmseg config: export its model.backbone')
    parser.add_argument('--checkpoint', help='weights in any format CoaT loads')
    parser.add_argument('--classifier', action='store_true', help='export the ImageNet classifier')
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='trace size, height width (one value: square). Default: 800 1333, '
                             '224 with --classifier')
    parser.add_argument('--check-shape', type=int, nargs=2, metavar=('HEIGHT', 'WIDTH'),
                        help='second size of the onnxruntime check (default: 25%% taller and 25%% '
                             'narrower than --shape, plus one pixel each, not a multiple of 32)')
    parser.add_argument('--exporter', choices=EXPORTERS, default=DEFAULT_EXPORTER,
                        help='dynamo (default from torch 2.5) or torchscript')
    parser.add_argument('--opset', type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='accepted difference to PyTorch: atol + rtol x the largest output '
                             '(float32 rounding grows with the outputs); default 1e-4')
    parser.add_argument('--rtol', type=float, default=1e-5, help='see --atol; default 1e-5')
    parser.add_argument('--force', action='store_true', help='replace an existing output file')
    parser.add_argument('--seed', type=int, default=0, help='seed of random weights')
    args = parser.parse_args(argv)
    if args.arch is None and args.config is None and args.checkpoint is None:
        parser.error('give --arch, --config or --checkpoint')
    if not args.output.lower().endswith('.onnx'):
        # Most likely a checkpoint given where the output goes, which --force would replace.
        parser.error(f'{args.output}: the first argument is the ONNX file to write, named '
                     f'*.onnx; the weights to export go in --checkpoint.')
    try:
        args.shape = input_size(args.shape, args.classifier)
        if args.check_shape is not None:
            args.check_shape = input_size(args.check_shape, args.classifier, '--check-shape')
    except ValueError as error:
        parser.error(str(error))
    if args.opset is not None and args.opset < 11:
        parser.error(f'--opset {args.opset}: CoaT\'s bilinear resizing (half-pixel Resize) needs '
                     f'opset 11 or later')
    return args


def sizes(args: argparse.Namespace) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """The trace size and the second check size."""
    trace = args.shape
    second = args.check_shape or (
        trace[0] * 5 // 4 + 1, max(32, trace[1] * 3 // 4 + 1))
    return trace, second


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    trace, second = sizes(args)
    start = time.perf_counter()
    try:
        model = build_model(arch=args.arch, checkpoint=args.checkpoint, config=args.config,
                            classifier=args.classifier)
        path = export_onnx(model, args.output, trace, exporter=args.exporter, opset=args.opset,
                           force=args.force,
                           protected=[path for path in (args.checkpoint, args.config) if path])
    except (CheckpointError, ValueError, OSError) as error:  # OSError: FileExistsError too
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(f'Exported {path} with the {args.exporter} exporter in '
          f'{time.perf_counter() - start:.0f} s.\nInput img (N, 3, H, W); outputs '
          f"{', '.join(output_names(model))} (batch, height and width dynamic).")
    failed = False
    for size, (difference, magnitude) in zip((trace, second),
                                             check_onnx(model, path, (trace, second))):
        print(f'onnxruntime vs PyTorch at {size[0]}x{size[1]}: max abs difference '
              f'{difference:.2e} (outputs up to {magnitude:.3g}, relative '
              f'{difference / max(magnitude, 1e-12):.1e})')
        failed |= difference > args.atol + args.rtol * magnitude
    if failed:
        print(f'error: a difference exceeds --atol {args.atol:g} + --rtol {args.rtol:g} x the '
              f'largest output; {path} is kept for inspection.', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
