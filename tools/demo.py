#!/usr/bin/env python
"""Run a trained detector on images and save pictures of its boxes and masks.

    python tools/demo.py CONFIG CHECKPOINT IMAGE_OR_FOLDER [...] [--out-dir outputs/demo]
        [--score-thr 0.3] [--device cpu|cuda] [--save-pred] [--force]

Pictures go to OUT_DIR/vis/<image name>; with --save-pred the raw predictions go to
OUT_DIR/preds/<image name without its extension>.json. Existing ones are replaced only with
--force, never an input image; images whose outputs would share a name are refused, as is a
checkpoint that does not fit the config's model, each with a one-line error and exit status 2.
Built on mmdet's DetInferencer.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

# From a checkout, use its coat_backbone even when the package is not installed.
ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'coat_backbone').is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Importing the engine registers CoaT and lets weights-only torch.load read mmengine checkpoints.
from coat_backbone.checkpoint import (HUB_PREFIX, CheckpointError,  # noqa: E402
                                      check_checkpoint_file, is_remote, local_copy)
from coat_backbone.engine.cli import refusals_as_usage_errors  # noqa: E402
from coat_backbone.engine.hooks import check_checkpoint_fits  # noqa: E402
from coat_backbone.toolkit.outputs import check_writable_folder  # noqa: E402

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(inputs: List[str], save_pred: bool = False) -> List[str]:
    """Image files given directly or found (not recursively) in the given folders; refused when
    two would write the same picture (same name) or, with `save_pred`, the same predictions
    (same name without extension)."""
    images: List[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images += sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            images.append(str(path))
        else:
            raise FileNotFoundError(f'No such image or folder: {item}')
    if not images:
        raise FileNotFoundError(f'No image ({", ".join(IMAGE_SUFFIXES)}) in {inputs}')
    by_name: Dict[str, str] = {}
    for image in images:
        other = by_name.setdefault(Path(image).stem if save_pred else Path(image).name, image)
        if other != image:
            outputs = 'predictions' if save_pred else 'pictures'
            raise ValueError(f'{other} and {image} have the same name, so their {outputs} would '
                             f'overwrite each other; run them with different --out-dir.')
    return images


def refuse_to_overwrite(images: List[str], out_dir: str, save_pred: bool, force: bool) -> None:
    """mmdet's DetInferencer writes OUT_DIR/vis/<name> and OUT_DIR/preds/<stem>.json: refuse
    OUT_DIR where it cannot write, outputs that would replace an input image, and, unless
    `force`, outputs that exist."""
    check_writable_folder(out_dir, f'--out-dir {out_dir}')
    outputs = [Path(out_dir) / 'vis' / Path(image).name for image in images]
    if save_pred:
        outputs += [Path(out_dir) / 'preds' / f'{Path(image).stem}.json' for image in images]
    inputs = {Path(image).resolve() for image in images}
    clash = [str(path) for path in outputs if path.resolve() in inputs]
    if clash:
        raise FileExistsError(f'{clash[0]} is an input image, and its picture would be written '
                              f'over it; choose another --out-dir.')
    existing = [str(path) for path in outputs if path.exists()]
    if existing and not force:
        raise FileExistsError(f'{len(existing)} outputs exist already ({existing[0]}, ...); '
                              f'choose another --out-dir or pass --force to replace them.')


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description='Draw a detector\'s predictions on images.')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='trained checkpoint: a file, URL or hf-hub: name')
    parser.add_argument('inputs', nargs='+', help='images, or folders of images')
    parser.add_argument('--out-dir', default='outputs/demo', help='where pictures are saved')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw predictions scoring at least this')
    parser.add_argument('--device', default=None,
                        help='e.g. cpu, cuda:0 (default: cuda when available)')
    parser.add_argument('--save-pred', action='store_true', help='also save predictions as json')
    parser.add_argument('--force', action='store_true',
                        help='replace pictures and predictions already in --out-dir')
    args = parser.parse_args(argv)

    with refusals_as_usage_errors(parser):
        # A Hub name is downloaded now, so that a failure is named before any work; a URL is
        # mmengine's to download.
        checkpoint = (local_copy(args.checkpoint) if args.checkpoint.startswith(HUB_PREFIX)
                      else args.checkpoint)
        for path in (args.config, checkpoint):
            if not Path(path).is_file() and not is_remote(path):
                raise FileNotFoundError(f'No such file: {path}')
        if not is_remote(checkpoint):
            check_checkpoint_file(checkpoint)
        images = list_images(args.inputs, args.save_pred)
        refuse_to_overwrite(images, args.out_dir, args.save_pred, args.force)

    from mmdet.apis import DetInferencer  # after the checks: importing mmdet takes seconds

    class CheckedDetInferencer(DetInferencer):
        """mmdet loads the weights non-strictly: a backbone-only or ImageNet file, or one for
        another class count, would draw random boxes. Refuse it, as tools/test.py does."""

        def _load_weights_to_model(self, model, checkpoint, cfg):
            if checkpoint is not None:
                check_checkpoint_fits(model, checkpoint, args.checkpoint)
            super()._load_weights_to_model(model, checkpoint, cfg)

    with refusals_as_usage_errors(parser, (CheckpointError,)):
        inferencer = CheckedDetInferencer(model=args.config, weights=args.checkpoint,
                                          device=args.device, show_progress=False)
    inferencer(images, out_dir=args.out_dir, pred_score_thr=args.score_thr,
               no_save_pred=not args.save_pred)
    print(f'Saved {len(images)} pictures to {Path(args.out_dir) / "vis"}')


if __name__ == '__main__':
    main()
