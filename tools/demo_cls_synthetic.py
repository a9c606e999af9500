#!/usr/bin/env python
"""Classification demo: generate the synthetic ImageNet-layout dataset, pretrain a small CoaT on it
with the ImageNet recipe (tools/train_cls.py's code path), then evaluate the last checkpoint with
tools/eval_cls.py's code and print `Acc@1 ... Acc@5 ...`.

    python tools/demo_cls_synthetic.py [--config CONFIG] [--work-dir DIR] [--min-top1 PERCENT]
        [--cfg-options KEY=VALUE ...]

The run takes about a minute on 2 CPU cores; a GPU is used when present.
"""
import argparse
import sys
import time
from pathlib import Path

# From a checkout, use its coat_backbone even when the package is not installed.
ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'coat_backbone').is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from coat_backbone.classification import (evaluate_folder, load_classifier,  # noqa: E402
                                          settings_from_config)
from coat_backbone.datasets import SyntheticImageNetArgs, generate_synthetic_imagenet  # noqa: E402
from coat_backbone.engine import adapt_to_machine, build_runner  # noqa: E402
from coat_backbone.engine.demo import load_demo_config, read_generated_data  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config',
                        default=str(ROOT / 'configs/imagenet/demo_synthetic_imagenet.py'),
                        help='a config with `synthetic_data` and `data_root`')
    parser.add_argument('--work-dir', default='work_dirs/cls_demo', help='where results go')
    parser.add_argument('--force', action='store_true',
                        help='rerun over an earlier run in --work-dir, replacing its '
                        'checkpoints')
    parser.add_argument('--min-top1', type=float, default=50.0,
                        help='exit with status 1 when the final val top-1 (%%) is lower')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_epochs=5')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    try:
        cfg, synthetic = load_demo_config(
            args.config, args.cfg_options, args.work_dir, args.force,
            template='configs/imagenet/demo_synthetic_imagenet.py',
            data_args=SyntheticImageNetArgs)
        data_root = generate_synthetic_imagenet(cfg.data_root, synthetic)
        read_generated_data(cfg, data_root)
        arch, transform = settings_from_config(cfg, args.config)
    except (OSError, ValueError) as error:
        raise SystemExit(str(error))
    cfg.launcher = 'none'
    adapt_to_machine(cfg)
    build_runner(cfg).train()

    checkpoint = (Path(args.work_dir) / 'last_checkpoint').read_text().strip()
    model = load_classifier(checkpoint, arch=arch)
    result = evaluate_folder(model, str(data_root / 'val'), transform, num_workers=0,
                             device='cuda' if torch.cuda.is_available() else 'cpu')
    minutes, seconds = divmod(round(time.monotonic() - start), 60)
    chance = 100.0 / synthetic.num_classes
    print(f'\n=== classification demo finished in {minutes}m{seconds:02d}s ===')
    print(f"Acc@1 {result['acc1']:.3f} Acc@5 {result['acc5']:.3f} loss {result['loss']:.3f} "
          f"({result['num_images']} val images, {synthetic.num_classes} classes, chance "
          f'{chance:.1f}%)\ncheckpoint: {checkpoint}')
    if result['acc1'] < args.min_top1:
        print(f"FAILED: top-1 {result['acc1']:.1f}% < --min-top1 {args.min_top1}%")
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
