"""Curves of mmengine runs: loss, learning rate and validation metrics, read from the JSON-lines
scalar log of mmengine's `LocalVisBackend` (`<work_dir>/<timestamp>/vis_data/scalars.json`, or
the identical `vis_data/<timestamp>.json` that `LoggerHook` asks it to write).

Training records carry `iter` (the global iteration) and, in epoch-based runs, `epoch`;
validation records carry the metrics and `step`, which is the epoch when an epoch-based run logs
metrics by epoch (`LoggerHook(log_metric_by_epoch=True)`, the default) and the iteration
otherwise. The log does not say which: validation steps are read as epochs when the run is
epoch-based and no step exceeds its last epoch. Keys both kinds of record have (`time`,
`data_time`) are the training ones; the validation ones become `val/time`, `val/data_time`.
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

Curve = Tuple[List[float], List[float]]  # (x, values)
# Metrics plotted by default: mmdet's COCO / VOC mAP, mmseg's mIoU, mmpretrain's top-1 accuracy.
DEFAULT_METRICS = re.compile(r'(?:^|/)(?:bbox_mAP|segm_mAP|mAP|mIoU|top1)$')
DEFAULT_TRAIN_KEYS = ('loss', 'lr')
_POSITION_KEYS = ('iter', 'epoch', 'step')
_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')


@dataclass
class RunLog:
    """The scalars of one run: training curves against the iteration, validation curves
    against their `step` (see `val_unit`)."""
    name: str
    path: Path
    last_epoch: int = 0  # 0 in iteration-based runs
    train: Dict[str, Curve] = field(default_factory=dict)
    val: Dict[str, Curve] = field(default_factory=dict)

    def keys(self) -> List[str]:
        return sorted(set(self.train) | set(self.val))

    @property
    def val_unit(self) -> str:
        """'epoch' or 'iteration': what the validation steps count."""
        steps = [step for xs, _ in self.val.values() for step in xs]
        return 'epoch' if self.last_epoch and max(steps, default=0) <= self.last_epoch \
            else 'iteration'

    def curve(self, key: str) -> Tuple[Curve, str]:
        """The curve of `key` and the unit of its x axis."""
        if key in self.train:
            return self.train[key], 'iteration'
        return self.val[key], self.val_unit


def find_scalars_files(path: Union[str, Path]) -> List[Path]:
    """The scalar logs of `path`: the file itself, a `vis_data` folder, a `<timestamp>` folder,
    or a work_dir: all its `<timestamp>` runs in order (a resumed run starts a new one)."""
    path = Path(path)
    if path.is_file():
        return [path]
    for candidate in (path / 'scalars.json', path / 'vis_data' / 'scalars.json'):
        if candidate.is_file():
            return [candidate]
    if path.is_dir():
        runs = sorted(child for child in path.iterdir() if _TIMESTAMP.match(child.name)
                      and (child / 'vis_data' / 'scalars.json').is_file())
        if runs:
            return [run / 'vis_data' / 'scalars.json' for run in runs]
    raise FileNotFoundError(
        f'No mmengine scalar log at {path}: give a work_dir, a <timestamp> folder of it, its '
        f'vis_data folder or the scalars.json file. The log is written by LocalVisBackend '
        f"(mmdet's and mmseg's default visualizer backend).")


def _run_name(scalars_file: Path) -> str:
    """`work_dirs/<run>/<timestamp>/vis_data/scalars.json` -> `<run>`."""
    if scalars_file.parent.name == 'vis_data' and _TIMESTAMP.match(scalars_file.parent.parent.name):
        return scalars_file.parent.parent.parent.name
    return scalars_file.stem


def _read_records(scalars_file: Path) -> List[dict]:
    records = []
    with open(scalars_file, encoding='utf-8') as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f'{scalars_file}, line {number}, is not JSON ({error}); is it '
                                 f'an mmengine scalars.json?') from None
            if not isinstance(record, dict):
                raise ValueError(f'{scalars_file}, line {number}: expected a JSON object.')
            records.append(record)
    return records


def _join_runs(runs: List[List[dict]]) -> List[dict]:
    """One history from a work_dir's runs in order. A run that starts at iteration i (a resume
    after i - 1, or i = 1 for a new run over the work_dir) supersedes all that the earlier runs
    logged from their first training record at iteration i or later: the iterations a killed run
    logged after its last checkpoint are logged again on resume. Runs without training records
    (a `runner.val()` of its own) are left out unless no run trained."""
    training = [records for records in runs if any('iter' in record for record in records)]
    joined: List[dict] = []
    for records in training or runs:
        first_iter = next((record['iter'] for record in records if 'iter' in record), None)
        if first_iter is not None:
            joined = joined[:next((i for i, record in enumerate(joined)
                                   if record.get('iter', -1) >= first_iter), len(joined))]
        joined += records
    return joined


def read_run_log(path: Union[str, Path], name: Optional[str] = None) -> RunLog:
    """Parse a run's scalar logs (see `find_scalars_files` for what `path` may be)."""
    scalars_files = find_scalars_files(path)
    where = scalars_files[0] if len(scalars_files) == 1 else Path(path)
    log = RunLog(name=name or _run_name(scalars_files[0]), path=where)
    for record in _join_runs([_read_records(file) for file in scalars_files]):
        is_train = 'iter' in record
        if is_train:
            log.last_epoch = max(log.last_epoch, record.get('epoch', 0))
        x = record['iter'] if is_train else record.get('step', 0)
        curves = log.train if is_train else log.val
        for key, value in record.items():
            if key not in _POSITION_KEYS and isinstance(value, (int, float)):
                xs, values = curves.setdefault(key, ([], []))
                xs.append(x)
                values.append(value)
    if not log.keys():
        raise ValueError(f'{where} holds no scalars; did the run log anything yet?')
    # Validation records repeat some training keys (time, data_time): keep them apart.
    for key in set(log.train) & set(log.val):
        log.val[f'val/{key}'] = log.val.pop(key)
    return log


def select_keys(logs: Sequence[RunLog], keys: Optional[Sequence[str]] = None) -> List[str]:
    """The keys to plot: `keys`, or by default loss, lr and the main metrics the runs have. Raises
    ValueError naming a requested key that no run has, or a run that has none of the keys, with
    the keys the runs do have."""
    available = sorted({key for log in logs for key in log.keys()})
    if keys is None:
        keys = [key for key in DEFAULT_TRAIN_KEYS if key in available] + [
            key for key in available if DEFAULT_METRICS.search(key)]
    unknown = [key for key in keys if key not in available]
    if unknown:
        raise ValueError(f'No run has the keys {unknown}; the runs have {available}.')
    for log in logs:
        if not any(key in log.keys() for key in keys):
            raise ValueError(f'{log.path} has none of the keys {list(keys)}; it has '
                             f'{log.keys()}.')
    return list(keys)


def plot_runs(logs: Sequence[RunLog], keys: Sequence[str], out_file: Union[str, Path],
              dpi: int = 100) -> Path:
    """One panel per key (up to 3 per row), one line per run; learning rates on a log scale."""
    columns = 2 if len(keys) in (2, 4) else min(3, len(keys))
    rows = -(-len(keys) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.4 * rows), layout='constrained')
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, key in zip(axes, keys):
        units = set()
        for log in logs:
            if key not in log.keys():
                continue
            (xs, values), unit = log.curve(key)
            units.add(unit)
            axis.plot(xs, values, marker='o' if key in log.val else None, markersize=3,
                      label=log.name)
        if key.endswith('lr'):
            axis.set_yscale('log')
        validation = any(key in log.val for log in logs)
        axis.set_title(f"{key}{' (validation)' if validation else ''}", fontsize=10)
        axis.set_xlabel(' / '.join(sorted(units)))
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        if len(logs) > 1:
            axis.legend(fontsize=8)
    for axis in axes[len(keys):]:
        axis.set_visible(False)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, dpi=dpi)
    return out_file
