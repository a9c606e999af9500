"""Plot loss, learning rate and validation metrics (mAP, mIoU, accuracy) of one or more
mmengine runs as a PNG.

Examples:
    python tools/plot_logs.py work_dirs/mask_rcnn_coat_lite_small_fpn_1x           # latest run
    python tools/plot_logs.py work_dirs/a work_dirs/b --legend 1x 3x \\
        --keys loss lr coco/bbox_mAP coco/segm_mAP --out curves.png
    python tools/plot_logs.py work_dirs/a/20250101_120000/vis_data/scalars.json --list

A run is a work_dir (its <timestamp> folders joined in order, resumes included), a <timestamp>
folder, its vis_data folder or a scalars.json file. Default keys: loss, lr and the main metric
of each task.
"""
import argparse
import sys
from pathlib import Path
from typing import List

from matplotlib.backend_bases import FigureCanvasBase

from coat_backbone.toolkit.outputs import check_writable_folder
from coat_backbone.toolkit.training_logs import plot_runs, read_run_log, select_keys


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('runs', nargs='+', help='work_dirs, timestamp folders or scalars.json')
    parser.add_argument('--keys', nargs='+', help='scalars to plot (default: loss, lr, metrics)')
    parser.add_argument('--legend', nargs='+', help='one name per run (default: run folders)')
    parser.add_argument('--out', default='curves.png',
                        help='picture to write, its format from its extension (default curves.png)')
    parser.add_argument('--force', action='store_true', help='replace an existing --out')
    parser.add_argument('--list', action='store_true', help='print the keys of each run and exit')
    args = parser.parse_args(argv)
    if args.legend is not None and len(args.legend) != len(args.runs):
        parser.error(f'--legend needs one name per run ({len(args.runs)})')
    out = Path(args.out)
    if out.is_dir():
        parser.error(f'--out {args.out} is a directory; give a file name such as '
                     f'{out / "curves.png"}')
    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix[1:].lower() not in formats:
        parser.error(f'--out {args.out}: end the name with the picture format to write, one of '
                     f'{", ".join("." + name for name in sorted(formats))} (e.g. curves.png)')
    return args


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    try:
        logs = [read_run_log(run, name) for run, name in
                zip(args.runs, args.legend or [None] * len(args.runs))]
        if args.list:
            for log in logs:
                print(f"{log.name} ({log.path}): {', '.join(log.keys())}")
            return 0
        keys = select_keys(logs, args.keys)
        if Path(args.out).exists() and not args.force:
            raise FileExistsError(f'{args.out} exists already; choose another --out or pass '
                                  f'--force to replace it.')
        check_writable_folder(Path(args.out).parent, f'--out {args.out}')
    except (OSError, ValueError) as error:  # OSError: missing logs, --out not writable
        print(f'error: {error}', file=sys.stderr)
        return 2
    for log in logs:
        missing = [key for key in keys if key not in log.keys()]
        if missing:
            print(f'note: {log.name} has no {missing}')
    print(f'Wrote {plot_runs(logs, keys, args.out)} ({", ".join(keys)})')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
