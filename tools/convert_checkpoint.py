"""Convert CoaT checkpoints between formats, publish them, or verify official files.

Examples:
    # official / timm / detector file -> backbone weights (the file init_cfg or load_from takes)
    python tools/convert_checkpoint.py coat_small_7479cf9b.pth coat_small_backbone.pth
    # timm's Hub weights -> a safetensors file of the backbone (shared tensors stored once)
    python tools/convert_checkpoint.py hf-hub:timm/coat_small.in1k coat_small.safetensors
    # the same under `backbone.` keys, published as coat_small_backbone_<sha256[:8]>.pth
    python tools/convert_checkpoint.py coat_small_7479cf9b.pth coat_small_backbone.pth \\
        --to backbone-prefixed --publish
    # a trained detector without its optimizer state, published
    python tools/convert_checkpoint.py work_dirs/run/epoch_12.pth mask_rcnn_coat.pth \\
        --to weights --publish
    # is this an official file, and which variant?
    python tools/convert_checkpoint.py coat_small_7479cf9b.pth --verify

Formats (--to): backbone (CoaT keys), backbone-prefixed (`backbone.` + CoaT keys), classifier
(CoaTClassifier keys, timm's layout; needs a file with the head), weights (every weight of the
file, e.g. a whole detector). Outputs hold only `state_dict` and a plain `meta` dict; an output
named *.safetensors is a safetensors file (the meta as its metadata). An existing file is never
replaced without --force, and the input never; files are written atomically.
"""
import argparse
import sys
from typing import List

from coat_backbone.checkpoint import CheckpointError
from coat_backbone.toolkit.builder import parse_arch
from coat_backbone.toolkit.conversion import (FORMATS, convert_checkpoint, save_checkpoint,
                                              verify_checkpoint)


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='checkpoint to convert or verify (file, URL or hf-hub: name)')
    parser.add_argument('output', nargs='?', help='file to write (not with --verify)')
    parser.add_argument('--to', choices=FORMATS, default='backbone', help='output format')
    parser.add_argument('--arch', type=parse_arch,
                        help='variant (name or dict; default: the one the weights\' shapes give)')
    parser.add_argument('--publish', action='store_true',
                        help='append the sha256 prefix to the output name: name_<sha256[:8]>.pth')
    parser.add_argument('--force', action='store_true', help='replace an existing output file')
    parser.add_argument('--verify', action='store_true',
                        help='check the input against the published hashes and name its variant; '
                             'exit status 1 when it is not a published file')
    args = parser.parse_args(argv)
    if args.verify == (args.output is not None):
        parser.error('give an output file, or --verify without one')
    return args


def verify(path: str) -> int:
    result = verify_checkpoint(path)
    print(f'sha256: {result.sha256}')
    if result.arch is None:
        variant = 'not CoaT'
    elif isinstance(result.arch, str):
        variant = f'CoaT arch {result.arch!r}'
    else:
        variant = f'CoaT arch {result.arch!r}, no published variant'
    if result.name_matches is False:
        # Published content under another hash's name was renamed; anything else was changed.
        cause = ('the file was renamed' if result.published else
                 'the file is damaged or was modified')
        print(f'The file name says {result.name_hash} but the content hashes to '
              f'{result.sha256[:8]}: {cause}.')
    if result.published:
        arch, resolution = result.published
        print(f'OK: the published coat_{arch}_{result.sha256[:8]}.pth ({arch}, trained at '
              f'{resolution}x{resolution}).\nWeights: {variant}.')
        return 0
    print(f'Not a published file: the hash matches none of the official checkpoints.\n'
          f'Weights: {variant}.')
    return 1


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    try:
        if args.verify:
            return verify(args.input)
        checkpoint = convert_checkpoint(args.input, to=args.to, arch=args.arch)
        path = save_checkpoint(checkpoint, args.output, force=args.force, publish=args.publish,
                               protected=[args.input])
    except (CheckpointError, OSError, ValueError) as error:  # OSError: the output's path
        print(f'error: {error}', file=sys.stderr)
        return 2
    meta = checkpoint['meta']
    arch = meta.get('coat_arch', 'n/a')
    print(f"Wrote {path}: {len(checkpoint['state_dict'])} tensors, format {args.to}, "
          f"arch {arch}.")
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
