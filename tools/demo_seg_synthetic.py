"""End-to-end segmentation demo: generate the synthetic segmentation shapes, train Semantic FPN +
CoaT from scratch, evaluate mIoU on the held-out split and save a training curve and image |
ground truth | prediction panels.

Usage (tools/run_demo_seg.sh runs it after setting up the environment):
    python tools/demo_seg_synthetic.py [--config CONFIG] [--work-dir DIR] [--min-miou 50]
"""
import argparse
import sys
import time
from pathlib import Path

# From a checkout, use its coat_backbone even when the package is not installed.
ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'coat_backbone').is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mmengine.config import DictAction  # noqa: E402

from coat_backbone.datasets.shapes import SEG_CLASSES, SegShapesArgs, generate_seg_shapes  # noqa: E402
from coat_backbone.engine import adapt_to_machine, build_runner  # noqa: E402
from coat_backbone.engine.demo import load_demo_config, read_generated_data  # noqa: E402
from coat_backbone.toolkit.training_logs import plot_runs, read_run_log, select_keys  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=str(ROOT / 'configs/demo/fpn_coat_demo_seg.py'),
                        help='a config with `synthetic_data` (SegShapesArgs) and `data_root`')
    parser.add_argument('--work-dir', default='work_dirs/demo_seg', help='where results are saved')
    parser.add_argument('--force', action='store_true',
                        help='rerun over an earlier run in --work-dir, replacing its '
                        'checkpoints')
    parser.add_argument('--min-miou', type=float, default=50.0,
                        help='exit with status 1 when the final val mIoU (%%) is lower')
    parser.add_argument('--num-pictures', type=int, default=6,
                        help='val images drawn in predictions.png')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_iters=200')
    args = parser.parse_args()
    if args.num_pictures < 1:
        parser.error(f'--num-pictures {args.num_pictures}: draw at least one picture')
    return args


def main() -> int:
    args = parse_args()
    start = time.monotonic()
    try:
        cfg, synthetic = load_demo_config(
            args.config, args.cfg_options, args.work_dir, args.force,
            template='configs/demo/fpn_coat_demo_seg.py', data_args=SegShapesArgs,
            expected={'model.decode_head.num_classes': len(SEG_CLASSES)})
        data_root = generate_seg_shapes(cfg.data_root, synthetic)
        read_generated_data(cfg, data_root)
    except (OSError, ValueError) as error:
        raise SystemExit(str(error))
    adapt_to_machine(cfg)

    runner = build_runner(cfg)
    runner.train()

    # Imported after the Runner has imported mmseg through the config's custom_imports.
    from coat_backbone.toolkit.visualization import save_segmentation_panels
    work_dir = Path(args.work_dir)
    val_set = runner.val_dataloader.dataset
    pictures = save_segmentation_panels(runner.model, val_set, work_dir / 'predictions.png',
                                        indices=range(min(args.num_pictures, len(val_set))))
    log = read_run_log(runner.log_dir, name='demo_seg')
    curve = plot_runs([log], select_keys([log], ['loss', 'mIoU']), work_dir / 'training_curve.png')
    steps, values = log.val['mIoU']
    miou = values[-1]
    history = ', '.join(f'{value:.1f} @ {step}' for step, value in zip(steps, values))
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    minutes, seconds = divmod(round(time.monotonic() - start), 60)

    print(f'\n=== segmentation demo finished in {minutes}m{seconds:02d}s ===')
    print(f'val ({len(val_set)} images, {len(SEG_CLASSES)} classes): mIoU {miou:.1f}% '
          f'(chance: 1/{len(SEG_CLASSES)} = {100 / len(SEG_CLASSES):.0f}%; per-class IoU in the '
          f'log)')
    print(f'mIoU during training (% @ iteration): {history}')
    print(f'training curve: {curve}\npredictions:    {pictures} (image | ground truth | '
          f'prediction)\ncheckpoint:     {checkpoint}\nlog:            {runner.log_dir}')
    if miou < args.min_miou:
        print(f'FAILED: mIoU {miou:.1f} < --min-miou {args.min_miou}')
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
