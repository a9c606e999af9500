"""Parameters and multiply-accumulates (MACs) of a CoaT or CoAtNet backbone or classifier, per scale
and in total, without data or weights.

Examples:
    python tools/get_flops.py --arch small                      # backbone at 800x1333 (H x W)
    python tools/get_flops.py configs/mask_rcnn_coat_small_fpn_1x.py --shape 800 1344
    python tools/get_flops.py --arch lite_small --classifier    # ImageNet classifier at 224x224
    python tools/get_flops.py configs/mask_rcnn_coatnet_0_rw_fpn_1x.py --shape 800 1344
    python tools/get_flops.py --arch coatnet_0_rw --classifier

MACs count convolutions (including the CPE / CRPE depthwise convolutions), linear layers and the
attention's matrix products (CoaT's factorized attention: two; CoAtNet's: Q K^T and the weights
times V, and the resizing of a bias table to another grid); FLOPs = 2 x MACs. CoaT's paper GMACs
also count LayerNorm and bilinear resizing the way fvcore does; that column is shown apart.
"""
import argparse
import sys
from typing import List

from coat_backbone.models.coatnet import CoAtNet
from coat_backbone.toolkit.analysis import PAPER_GMACS_224, count_complexity, total_cost
from coat_backbone.toolkit.builder import build_model, input_size, parse_arch


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?',
                        help='mmdet / mmseg config; only its model.backbone is built')
    parser.add_argument('--arch', type=parse_arch,
                        help='variant instead of a config: a CoaT or CoAtNet name (small, '
                             'lite_small, coatnet_0_rw, ...) or a dict of settings')
    parser.add_argument('--classifier', action='store_true',
                        help='count the ImageNet classifier (with --arch); default shape 224')
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='input height and width (one value: square). Default: 800 1333 '
                             '(H W, detection test scale; mmdet pads it to 800 1344), 224 with '
                             '--classifier')
    args = parser.parse_args(argv)
    if (args.config is None) == (args.arch is None):
        parser.error('give either a config or --arch')
    try:
        args.shape = input_size(args.shape, args.classifier)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    shape = args.shape
    try:
        model = build_model(arch=args.arch, config=args.config, classifier=args.classifier,
                            families=('CoaT', 'CoAtNet'))
        rows = count_complexity(model, shape)
    except (ValueError, OSError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    total = total_cost(rows)
    coatnet = isinstance(model, CoAtNet)
    what = args.config or f'{type(model).__name__}(arch={args.arch!r})'
    print(f'{what}, input 3x{shape[0]}x{shape[1]} (C x H x W), batch 1')
    columns = ('params (M)', 'conv', 'linear', 'attention', 'MACs', 'FLOPs') + (
        () if coatnet else ('paper MACs', ))
    print(f"{'':11}" + ''.join(f'{column:>11}' for column in columns))
    for name, cost in [(row, cost) for row, cost in rows.items() if cost.params or cost.macs] \
            + [('total', total)]:
        values = (cost.params / 1e6, cost.conv / 1e9, cost.linear / 1e9, cost.attention / 1e9,
                  cost.macs / 1e9, cost.flops / 1e9, cost.paper_macs / 1e9)[:len(columns)]
        print(f'{name:11}' + ''.join(f'{value:11.3f}' for value in values))
    if coatnet:
        print('Operations in G (1e9). conv, linear, attention: multiply-accumulates (MACs) of the\n'
              'convolutions, linear layers and attention matmuls (Q K^T, weights x V, and the\n'
              'resizing of bias tables to the grid); MACs: their sum; FLOPs = 2 x MACs. scale1-4:\n'
              'the stages of strides 4-32.')
        return 0
    print('Operations in G (1e9). conv, linear, attention: multiply-accumulates (MACs) of the\n'
          'convolutions (CPE and CRPE included), linear layers and factorized-attention matmuls;\n'
          'MACs: their sum; FLOPs = 2 x MACs. paper MACs: MACs + LayerNorm (5/element) + bilinear\n'
          'resizing (4/output element), as fvcore counts them. shared_mlp: parameters of the MLPs\n'
          'the parallel blocks share across scales 2-4 (their MACs are in each scale).')
    if args.classifier and shape == (224, 224) and isinstance(args.arch, str) \
            and args.arch in PAPER_GMACS_224:
        paper = PAPER_GMACS_224[args.arch]
        print(f'Paper: {paper:.2f} GMACs; here {total.paper_macs / 1e9:.3f} in its convention '
              f'({100 * (total.paper_macs / 1e9 / paper - 1):+.2f}%), {total.macs / 1e9:.3f} '
              f'MACs only ({100 * (total.macs / 1e9 / paper - 1):+.2f}%).')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
