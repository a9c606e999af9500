"""The command lines of tools/train.py and tools/test.py, following mmdet's and mmseg's tools.

Each `*_main(argv)` parses arguments, adjusts the config and runs an mmengine Runner; the config's
`default_scope` picks mmdet or mmseg. Only `--out` and `--show-dir` of testing differ between the
two, because their result dumps and visualisation hooks differ.
"""
import argparse
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, List, Optional

from mmengine.config import Config, DictAction

from ..checkpoint import CheckpointError
from ..toolkit.outputs import check_writable_folder
from .runtime import (adapt_to_machine, build_runner, check_neck_fits_backbone,
                      check_weights_to_load, check_work_dir, default_work_dir, enable_amp,
                      enable_auto_scale_lr, end_process_group, load_config,
                      refuse_to_overwrite_a_run, set_local_rank, set_resume)

LAUNCHERS = ['none', 'pytorch', 'slurm', 'mpi']


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: the config\'s work_dir, else work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_dataloader.batch_size=4 '
                        'model.backbone.drop_path_rate=0.1 (lists: key="[a,b]")')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='job launcher: pytorch for tools/dist_*.sh, slurm for '
                        'tools/slurm_*.sh')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)


@contextmanager
def refusals_as_usage_errors(parser: argparse.ArgumentParser,
                             refusals: tuple = (CheckpointError, OSError, ValueError)
                             ) -> Iterator[None]:
    """Bad input found by the checks (a path, an earlier run in the way, a checkpoint that does
    not fit) ends the command with its message and status 2, as the other tools do, rather than
    a traceback. Shared with tools/demo.py."""
    try:
        yield
    except refusals as error:
        parser.exit(2, f'{parser.prog}: error: {error}\n')


def _prepare(args: argparse.Namespace) -> Config:
    set_local_rank(args.local_rank)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    check_work_dir(args.config, cfg.work_dir)
    return cfg


def train_main(argv: Optional[List[str]] = None) -> None:
    """Train a detector, segmentor or classifier from a config file."""
    parser = argparse.ArgumentParser(description='Train a model from an MMDetection, '
                                     'MMSegmentation or ImageNet (configs/imagenet/) config.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                        help='resume training: from CHECKPOINT, or without a value from '
                        '<work_dir>/last_checkpoint (without one, the run the config describes, '
                        'from its load_from)')
    parser.add_argument('--force', action='store_true',
                        help='start a new run in a work_dir that holds an earlier run\'s '
                        'checkpoints, overwriting those of the same names')
    parser.add_argument('--amp', action='store_true', help='mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr to the actual total batch size '
                        '(auto_scale_lr.base_batch_size is the one it was tuned for)')
    _common_arguments(parser)
    args = parser.parse_args(argv)

    with refusals_as_usage_errors(parser):
        cfg = _prepare(args)
        if args.amp:
            enable_amp(cfg)
        if args.auto_scale_lr:
            enable_auto_scale_lr(cfg)
        set_resume(cfg, args.resume)
        check_weights_to_load(cfg)
        refuse_to_overwrite_a_run(cfg, args.force)
        check_neck_fits_backbone(cfg)
        adapt_to_machine(cfg)
    runner = build_runner(cfg)
    with refusals_as_usage_errors(parser, (CheckpointError,)):
        runner.train()
    end_process_group()


def _dump_results(cfg: Config, out: str, force: bool) -> None:
    if cfg.get('default_scope') == 'mmseg':  # IoUMetric writes a map per image into a folder
        check_writable_folder(out, f'--out {out}')
        if not force and osp.isdir(out) and os.listdir(out):
            raise FileExistsError(f'--out {out} is not empty; choose a new folder, or pass --force '
                                  f'to write the maps into it (maps of the same names are '
                                  f'replaced, other files stay).')
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
        return
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out {out}: detection results are dumped as a pickle; use a .pkl '
                         f'file name.')
    if osp.isdir(out):
        raise IsADirectoryError(f'--out {out} is a folder; give a .pkl file name.')
    check_writable_folder(osp.dirname(out), f'--out {out}')
    if osp.exists(out) and not force:
        raise FileExistsError(f'--out {out} exists already; choose another path or pass --force '
                              f'to replace it.')
    dump = dict(type='DumpDetResults', out_file_path=out)
    evaluators = cfg.test_evaluator
    cfg.test_evaluator = ([*evaluators, dump] if isinstance(evaluators, (list, tuple)) else
                          [evaluators, dump])


def _enable_visualization(cfg: Config, show: bool, show_dir: Optional[str], wait_time: float,
                          force: bool) -> None:
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ValueError('--show / --show-dir need default_hooks.visualization in the config '
                         '(DetVisualizationHook or SegVisualizationHook).')
    # mmdet puts a relative --show-dir under <work_dir>/<timestamp>, a new folder each run; an
    # absolute one, and mmseg's, are used as given, where a second run's pictures (same names)
    # would replace the first's.
    used_as_given = cfg.get('default_scope') != 'mmdet' or osp.isabs(show_dir or '')
    if show_dir and used_as_given:
        check_writable_folder(show_dir, f'--show-dir {show_dir}')
    if (show_dir and used_as_given and not force and osp.isdir(show_dir)
            and os.listdir(show_dir)):
        raise FileExistsError(f'--show-dir {show_dir} is not empty, and this run would replace '
                              f'pictures of the same names there; choose a new folder or pass '
                              f'--force.')
    hook['draw'] = True
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        if cfg.get('default_scope') == 'mmdet':
            hook['test_out_dir'] = show_dir
        else:
            cfg.visualizer['save_dir'] = show_dir
            hook['interval'] = 1  # mmseg's hook draws every `interval`-th test batch (50)


def test_main(argv: Optional[List[str]] = None) -> None:
    """Evaluate a checkpoint on the config's test set."""
    parser = argparse.ArgumentParser(description='Test a checkpoint with an MMDetection, '
                                     'MMSegmentation or ImageNet (configs/imagenet/) config.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='also save the raw predictions: a .pkl file (mmdet) or a '
                        'folder of prediction maps (mmseg)')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing --out (mmseg: maps of the same names in the '
                        'folder; other files stay) and pictures in --show-dir')
    parser.add_argument('--show', action='store_true', help='display each prediction')
    parser.add_argument('--show-dir', help='save pictures of the predictions here (mmdet: '
                        'relative to <work_dir>/<timestamp>)')
    parser.add_argument('--wait-time', type=float, default=2.0,
                        help='seconds each picture is shown with --show')
    _common_arguments(parser)
    args = parser.parse_args(argv)

    with refusals_as_usage_errors(parser):
        cfg = _prepare(args)
        cfg.load_from = args.checkpoint
        check_weights_to_load(cfg, training=False)
        cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='CheckpointFitsModelHook')]
        if args.out:
            _dump_results(cfg, args.out, args.force)
        if args.show or args.show_dir:
            _enable_visualization(cfg, args.show, args.show_dir, args.wait_time, args.force)
        check_neck_fits_backbone(cfg)
        adapt_to_machine(cfg)
    runner = build_runner(cfg)
    with refusals_as_usage_errors(parser, (CheckpointError,)):
        runner.test()
    end_process_group()
