"""The start shared by the synthetic-data demos (tools/demo_synthetic.py, demo_seg_synthetic.py and
demo_cls_synthetic.py): read the config, refuse to train over an earlier run, and point the data
loaders at the generated dataset."""
from functools import reduce
from operator import getitem
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from mmengine.config import Config

from ..datasets.shapes import coco_shapes_paths
from .runtime import check_work_dir, load_config, refuse_to_overwrite_a_run

# Each loader and the split it reads.
LOADER_SPLITS = dict(train_dataloader='train', val_dataloader='val', test_dataloader='val')


def load_demo_config(config: str, cfg_options: Optional[dict], work_dir: str, force: bool,
                     template: str, data_args: type,
                     expected: Optional[Mapping[str, Any]] = None) -> Tuple[Config, Any]:
    """The demo's config with `work_dir` set, and its `synthetic_data` as a `data_args`.

    Raises FileNotFoundError for a missing config; ValueError, naming `template` (the config to
    derive from), for one without `synthetic_data` or `data_root`, whose `synthetic_data` does not
    fit `data_args` (another demo's config), or whose `expected` (dotted) keys, which the
    generated data depends on, are absent or hold other values. Refuses a `work_dir` as
    tools/train.py does: one it cannot write in (an OSError from `check_work_dir`), one holding a
    file of the user's under the config's name, or an earlier run without `force`
    (FileExistsError)."""
    cfg = load_config(config, cfg_options)
    fix = f'use a config derived from {template}'
    if 'synthetic_data' not in cfg or 'data_root' not in cfg:
        raise ValueError(f'{config} lacks `synthetic_data` or `data_root`; {fix}')
    for key, wanted in (expected or {}).items():
        try:
            value = reduce(getitem, key.split('.'), cfg)
        except (KeyError, TypeError):
            raise ValueError(f'{config} lacks `{key}`, which this demo needs; {fix}') from None
        if (tuple(value) if isinstance(value, list) else value) != wanted:
            raise ValueError(f'{config}: `{key}` is {value!r}, but the generated data needs '
                             f'{wanted!r}; {fix}')
    try:
        synthetic = data_args(**cfg.synthetic_data)
    except TypeError as error:
        raise ValueError(f'{config}: `synthetic_data` does not fit this demo ({error}); '
                         f'{fix}') from None
    check_work_dir(config, work_dir)
    cfg.work_dir = work_dir
    refuse_to_overwrite_a_run(cfg, force, can_resume=False)
    return cfg, synthetic


def read_generated_data(cfg: Config, data_root: Path) -> None:
    """Point every loader's dataset (inside dataset wrappers too), and COCO evaluators'
    `ann_file`, at the dataset generated in `data_root`. `--cfg-options data_root=...` changes only
    the variable: the values the config file built from it keep the file's path, so the demo
    would read other data than it made."""
    for loader, split in LOADER_SPLITS.items():
        _point_dataset(cfg[loader].dataset, data_root, split, f'{loader}.dataset')
    for name in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(name) or []
        for evaluator in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
            if 'ann_file' in evaluator:
                evaluator.ann_file = str(coco_shapes_paths(data_root, 'val')[0])


def _point_dataset(dataset: dict, data_root: Path, split: str, where: str) -> None:
    if 'dataset' in dataset:  # RepeatDataset, ClassBalancedDataset, ...
        _point_dataset(dataset.dataset, data_root, split, f'{where}.dataset')
    elif 'datasets' in dataset:  # ConcatDataset
        for index, part in enumerate(dataset.datasets):
            _point_dataset(part, data_root, split, f'{where}.datasets[{index}]')
    elif 'root' in dataset:  # ImageFolderDataset: one folder per split
        dataset.root = str(data_root / split)
    elif 'data_root' in dataset:  # mmdet's and mmseg's datasets
        dataset.data_root = str(data_root)
    else:
        raise ValueError(f'{where} has neither `data_root` nor `root`; the demo cannot point it '
                         f'at {data_root}.')
