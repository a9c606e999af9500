"""End-to-end demo: generate the synthetic shapes dataset, train Mask R-CNN + CoaT from scratch,
evaluate COCO bbox/segm mAP on the held-out split and save a training curve and prediction pictures.

Usage (tools/run_demo.sh runs it after setting up the environment):
    python tools/demo_synthetic.py [--config CONFIG] [--work-dir DIR] [--min-bbox-map 0.3]
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

from coat_backbone.datasets.shapes import (SHAPE_CLASSES, CocoShapesArgs,  # noqa: E402
                                           generate_coco_shapes)
from coat_backbone.engine import adapt_to_machine, build_runner  # noqa: E402
from coat_backbone.engine.demo import load_demo_config, read_generated_data  # noqa: E402
from coat_backbone.toolkit.training_logs import plot_runs, read_run_log, select_keys  # noqa: E402
from coat_backbone.toolkit.visualization import draw_prediction_gallery  # noqa: E402

METRICS = ('coco/bbox_mAP', 'coco/segm_mAP')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=str(ROOT / 'configs/demo/mask_rcnn_coat_demo.py'),
                        help='a config with `synthetic_data` (CocoShapesArgs) and `data_root`')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where results are saved')
    parser.add_argument('--force', action='store_true',
                        help='rerun over an earlier run in --work-dir, replacing its '
                        'checkpoints')
    parser.add_argument('--min-bbox-map', type=float, default=0.30,
                        help='exit with status 1 when the final val bbox mAP is lower')
    parser.add_argument('--num-pictures', type=int, default=8,
                        help='val images drawn in predictions.png')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_epochs=2')
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
            template='configs/demo/mask_rcnn_coat_demo.py', data_args=CocoShapesArgs,
            expected={'metainfo.classes': SHAPE_CLASSES})
        data_root = generate_coco_shapes(cfg.data_root, synthetic)
        read_generated_data(cfg, data_root)
    except (OSError, ValueError) as error:
        raise SystemExit(str(error))
    adapt_to_machine(cfg)

    runner = build_runner(cfg)
    runner.train()

    work_dir = Path(args.work_dir)
    log = read_run_log(runner.log_dir, name='demo')
    # Names the keys the run did log when a metric is missing (a config without validation).
    curve = plot_runs([log], select_keys([log], ['loss', *METRICS]),
                      work_dir / 'training_curve.png')
    val_set = runner.val_dataloader.dataset
    pictures = draw_prediction_gallery(
        runner.model, val_set, runner.visualizer, work_dir / 'predictions.png',
        indices=range(min(args.num_pictures, len(val_set))))
    final = {key: log.val[key][1][-1] for key in METRICS}
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    minutes, seconds = divmod(round(time.monotonic() - start), 60)

    print(f'\n=== demo finished in {minutes}m{seconds:02d}s ===')
    print(f'val ({len(val_set)} images): '
          f'bbox mAP {final[METRICS[0]]:.3f}, segm mAP {final[METRICS[1]]:.3f}')
    print(f'training curve: {curve}\npredictions:    {pictures} (left ground truth, right '
          f'prediction)\ncheckpoint:     {checkpoint}\nlog:            {runner.log_dir}')
    if final[METRICS[0]] < args.min_bbox_map:
        print(f'FAILED: bbox mAP {final[METRICS[0]]:.3f} < --min-bbox-map {args.min_bbox_map}')
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
