"""Per-scale, per-head attention maps of CoaT's factorized attention for one query, the CRPE
contribution, and the feature map of each scale, as PNGs.

Examples:
    python tools/visualize_attention.py demo.jpg out/ \
        --checkpoint hf-hub:timm/coat_lite_small.in1k --query 120 80
    python tools/visualize_attention.py demo.jpg out/ --arch lite_small  # random weights
    python tools/visualize_attention.py demo.jpg out/ --config configs/demo/mask_rcnn_coat_demo.py \
        --checkpoint work_dirs/demo/epoch_16.pth --cls --block 0

Writes attention_scale1.png ... attention_scale4.png, one row per head with three maps: the
factorized weights CoaT applies, w_n = scale * q . softmax_tokens(K)_n; the conventional
softmax(q . k * scale) map CoaT never computes, for comparison; the CRPE term's magnitude. And
features.png: each scale's feature norm. The derivation is in coat_backbone/toolkit/attention.py.
"""
import argparse
import sys
from pathlib import Path
from typing import List

import torch

from coat_backbone.checkpoint import CheckpointError
from coat_backbone.toolkit.attention import (capture_attention, load_image, plot_attention,
                                             plot_features)
from coat_backbone.toolkit.builder import build_model, parse_arch
from coat_backbone.toolkit.outputs import check_writable_folder

PICTURES = [f'attention_scale{scale}.png' for scale in range(1, 5)] + ['features.png']


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('image', help='input image (any format Pillow reads)')
    parser.add_argument('out_dir', help='folder for the PNGs')
    parser.add_argument('--checkpoint', help='weights in any format CoaT loads (classifier, '
                        'timm, detector, segmentor); the variant is read from them')
    parser.add_argument('--arch', type=parse_arch,
                        help='variant; without --checkpoint the weights are random (a demo)')
    parser.add_argument('--config', help='mmdet / mmseg config whose backbone the checkpoint has '
                        '(for variants that are not published ones)')
    query = parser.add_mutually_exclusive_group()
    query.add_argument('--query', type=float, nargs=2, metavar=('X', 'Y'),
                       help='query pixel of the image (default: its centre)')
    query.add_argument('--cls', action='store_true', help="query the class token instead")
    parser.add_argument('--block', type=int, default=-1,
                        help='which attention of each scale, in running order: serial blocks, '
                             'then parallel blocks (default -1, the last)')
    parser.add_argument('--heads', type=int, nargs='+', default=list(range(8)),
                        help='heads to draw (default: all 8)')
    parser.add_argument('--max-size', type=int, default=512,
                        help='resize the image so that its longer side is this (default 512)')
    parser.add_argument('--seed', type=int, default=0, help='seed of random weights')
    parser.add_argument('--dpi', type=int, default=100)
    parser.add_argument('--force', action='store_true',
                        help='replace the pictures an earlier run wrote in out_dir')
    args = parser.parse_args(argv)
    if args.checkpoint is None and args.arch is None and args.config is None:
        parser.error('give --checkpoint, or --arch / --config for random weights')
    if not all(0 <= head < 8 for head in args.heads):
        parser.error(f'--heads {args.heads}: CoaT has heads 0-7')
    return args


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    out_dir = Path(args.out_dir)
    earlier = [name for name in PICTURES if (out_dir / name).exists()]
    inputs = {Path(path).resolve() for path in (args.image, args.checkpoint, args.config) if path}
    try:
        check_writable_folder(out_dir, f'out_dir {out_dir}')
        clash = [name for name in PICTURES if (out_dir / name).resolve() in inputs]
        if clash:
            raise ValueError(f'{out_dir / clash[0]} is an input of this command, and this run '
                             f'would write {clash[0]} over it; choose another out_dir.')
        if earlier and not args.force:
            raise ValueError(f'{out_dir} holds pictures of an earlier run ({", ".join(earlier)}); '
                             f'choose another folder or pass --force to replace them.')
        model = build_model(arch=args.arch, checkpoint=args.checkpoint, config=args.config)
        rgb, image, (width, height) = load_image(args.image, args.max_size)
        point = None
        if not args.cls:
            x, y = args.query or (width / 2, height / 2)
            if not (0 <= x < width and 0 <= y < height):
                raise ValueError(f'--query {x:g} {y:g} is outside the {width}x{height} image.')
            point = (x * rgb.shape[1] / width, y * rgb.shape[0] / height)  # in the resized image
        records, features = capture_attention(model, image, args.block)
    except (CheckpointError, ValueError, OSError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    for scale in range(1, 5):
        path = out_dir / f'attention_scale{scale}.png'
        if scale in records:
            plot_attention(rgb, records[scale], point, args.heads, path, dpi=args.dpi)
            print(f'Wrote {path} ({records[scale].name})')
        else:
            path.unlink(missing_ok=True)  # an earlier run's (--force): not this block's
            print(f'Scale {scale} has no attention numbered {args.block}: no {path.name}')
    print(f"Wrote {plot_features(rgb, features, point, out_dir / 'features.png', dpi=args.dpi)}")
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
