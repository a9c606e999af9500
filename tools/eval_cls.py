#!/usr/bin/env python
"""Evaluate a CoaT classification checkpoint on an image folder, the way the official repository
does, and print its result line: `Acc@1 77.504 Acc@5 93.814 loss 0.947 (50000 images)`.

    python tools/eval_cls.py CHECKPOINT DATA_DIR [--arch ARCH | --config CONFIG]
        [--img-size N] [--crop-pct F] [--crop-mode {center,squash,border}] [--raw-weights]
        [--batch-size N] [--num-workers N] [--device DEVICE] [--no-amp]

CHECKPOINT: an official `{'model': ...}` file, timm weights (a file, or their Hub name such as
hf-hub:timm/coat_lite_tiny.in1k), or a tools/train_cls.py checkpoint.
DATA_DIR: one folder per class, e.g. data/imagenet/val (folder names sorted = class indices).
The arch of the published variants is recognised from the weights; --config takes the arch and
the evaluation transform of a training config (for custom archs). The default transform is the
official one: bicubic, crop_pct 0.875 (short side 256 for 224, 438 for 384), centre crop.
"""
import argparse
import os
import sys
from pathlib import Path

# From a checkout, use its coat_backbone even when the package is not installed.
ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'coat_backbone').is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from coat_backbone.checkpoint import CheckpointError  # noqa: E402
from coat_backbone.classification import (eval_transform, evaluate_folder,  # noqa: E402
                                          load_classifier, settings_from_config)
from coat_backbone.engine import load_config  # noqa: E402
from coat_backbone.toolkit.builder import parse_arch  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='checkpoint: a file, URL or hf-hub: name')
    parser.add_argument('data_dir', help='folder of class folders, e.g. data/imagenet/val')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--arch', type=parse_arch,
                        help='CoaT variant, a name or a dict literal of its settings '
                        '(default: recognised from the weights)')
    source.add_argument('--config', help='take the arch and evaluation transform of this '
                        'training config (configs/imagenet/...)')
    parser.add_argument('--img-size', type=int, help='input size (default 224, or the config\'s)')
    parser.add_argument('--crop-pct', type=float,
                        help='crop fraction (default 0.875, the official; timm uses 0.9)')
    parser.add_argument('--crop-mode', choices=['center', 'squash', 'border'],
                        help='timm crop mode (default center)')
    parser.add_argument('--raw-weights', action='store_true',
                        help='for a checkpoint trained with EMA: the raw weights instead of '
                        'the averaged ones')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--num-workers', type=int, default=min(8, os.cpu_count() or 1),
                        help='image decoding processes (default: CPU cores, at most 8)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--no-amp', action='store_true',
                        help='float32 on GPU (the official evaluation uses float16 autocast)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    arch = args.arch
    transform = eval_transform()
    try:
        if not Path(args.data_dir).is_dir():
            raise FileNotFoundError(f'DATA_DIR {args.data_dir} is not a folder: give the folder '
                                    f'of class folders, e.g. data/imagenet/val.')
        if args.config:
            arch, transform = settings_from_config(load_config(args.config), args.config)
        for key, value in (('input_size', args.img_size), ('crop_pct', args.crop_pct),
                           ('crop_mode', args.crop_mode)):
            if value is not None:
                transform[key] = value
        model = load_classifier(args.checkpoint, arch=arch, use_raw_weights=args.raw_weights)
        # As torchvision's ImageFolder counts classes: every sub-folder is one.
        classes = sum(entry.is_dir() for entry in os.scandir(args.data_dir))
        if classes != model.num_classes:
            raise ValueError(f'{args.data_dir} has {classes} class folders but the checkpoint\'s '
                             f'head has {model.num_classes} classes: give the folder of the '
                             f'dataset it was trained for.')
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    result = evaluate_folder(model, args.data_dir, transform, batch_size=args.batch_size,
                             num_workers=args.num_workers, device=args.device,
                             amp=args.device.startswith('cuda') and not args.no_amp)
    print(f"Acc@1 {result['acc1']:.3f} Acc@5 {result['acc5']:.3f} loss {result['loss']:.3f} "
          f"({result['num_images']} images)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
