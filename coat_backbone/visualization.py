"""Pictures of a finished run: the training curve and a gallery of ground truth next to predictions.

Both work from what mmengine already produces: the ``scalars.json`` of ``LocalVisBackend`` (any
task), and a detector's ``test_step`` outputs drawn by the config's ``DetLocalVisualizer``.
"""
from pathlib import Path
from typing import Dict, List, Sequence, Union

import cv2
import mmcv
import numpy as np
import torch
from matplotlib.figure import Figure
from mmengine.dataset import BaseDataset, pseudo_collate
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement, InstanceData
from mmengine.visualization import Visualizer

from .training_logs import read_run_log

Series = Dict[str, List[float]]
_GAP = 12  # white pixels between gallery tiles
_TITLE_HEIGHT = 28


def read_scalars(scalars_file: Union[str, Path]) -> Dict[str, Series]:
    """A ``LocalVisBackend`` ``scalars.json`` as ``{key: dict(step=[..], value=[..])}``: training
    scalars against the iteration, validation metrics against their logged step."""
    log = read_run_log(scalars_file)
    return {key: dict(step=steps, value=values)
            for key, (steps, values) in {**log.train, **log.val}.items()}


def plot_training_curve(scalars_file: Union[str, Path], out_file: Union[str, Path],
                        metrics: Sequence[str], loss_key: str = 'loss') -> Path:
    """Plot the training loss and the validation ``metrics`` against the iteration.

    The metrics must have been logged by iteration (``LoggerHook(log_metric_by_epoch=False)``),
    otherwise their steps are epochs and the two panels would not share an axis.
    """
    curves = read_scalars(scalars_file)
    missing = [key for key in (loss_key, *metrics) if key not in curves]
    if missing:
        raise KeyError(f'{scalars_file} has no {missing}; it has {sorted(curves)}. Pass keys that '
                       'the run logged (validation metrics appear only after a validation).')
    # A bare Figure renders with Agg and leaves pyplot's global backend alone.
    figure = Figure(figsize=(11, 4))
    loss_axis, metric_axis = figure.subplots(1, 2)
    loss = curves[loss_key]
    loss_axis.plot(loss['step'], loss['value'], color='tab:blue')
    loss_axis.set(title='training loss', xlabel='iteration', ylabel=loss_key, ylim=(0, None))
    for key in metrics:
        metric_axis.plot(curves[key]['step'], curves[key]['value'], marker='o', label=key)
    # mmdet's mAPs are fractions; mmseg's mIoU and accuracies are percentages.
    top = 1 if max(v for key in metrics for v in curves[key]['value']) <= 1 else 100
    metric_axis.set(title='validation', xlabel='iteration', ylim=(0, top),
                    xlim=loss_axis.get_xlim())
    metric_axis.legend(loc='lower right')
    for axis in (loss_axis, metric_axis):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, dpi=100)
    return out_file


@torch.no_grad()
def draw_prediction_gallery(model: BaseModel, dataset: BaseDataset, visualizer: Visualizer,
                            out_file: Union[str, Path], indices: Sequence[int],
                            upscale: int = 3, score_thr: float = 0.5, columns: int = 2) -> Path:
    """Predict ``dataset[indices]`` and save one grid of ground truth | prediction pairs.

    ``visualizer`` is the config's ``DetLocalVisualizer``. Images and results are enlarged
    ``upscale`` times (nearest neighbour) before drawing, so that the labels stay legible on the
    small synthetic images.
    """
    if not indices:
        raise ValueError('indices is empty: name at least one dataset item to draw')
    visualizer.dataset_meta = dataset.metainfo
    model.eval()
    tiles = []
    for index in indices:
        sample = model.test_step(pseudo_collate([dataset[index]]))[0].cpu()
        image = mmcv.imread(sample.img_path, channel_order='rgb')
        visualizer.add_datasample(f'item{index}', _enlarge_image(image, upscale),
                                  data_sample=_enlarge_sample(sample, upscale), draw_gt=True,
                                  draw_pred=True, pred_score_thr=score_thr)
        tiles.append(_with_titles(visualizer.get_image(),
                                  ('ground truth', f'prediction (score >= {score_thr:g})')))
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    gap = np.full((tiles[0].shape[0], _GAP, 3), 255, dtype=np.uint8)
    rows = [np.concatenate([part for tile in tiles[i:i + columns] for part in (tile, gap)][:-1],
                           axis=1) for i in range(0, len(tiles), columns)]
    out_file = Path(out_file)
    mmcv.imwrite(mmcv.rgb2bgr(np.concatenate(rows, axis=0)), str(out_file))
    return out_file


def _with_titles(pair: np.ndarray, titles: Sequence[str]) -> np.ndarray:
    """Put a white strip with one title per half above a side-by-side RGB picture."""
    strip = np.full((_TITLE_HEIGHT, pair.shape[1], 3), 255, dtype=np.uint8)
    half = pair.shape[1] // len(titles)
    for i, title in enumerate(titles):
        cv2.putText(strip, title, (i * half + 6, _TITLE_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate((strip, pair), axis=0)


def _enlarge_image(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def _enlarge_sample(sample: BaseDataElement, factor: int) -> BaseDataElement:
    """Copy of ``sample`` whose boxes and instance masks are ``factor`` times larger."""
    enlarged = sample.clone()
    for name in ('gt_instances', 'pred_instances'):
        if name not in sample:
            continue
        instances: InstanceData = getattr(sample, name).clone()
        if 'bboxes' in instances:
            boxes = instances.bboxes
            instances.bboxes = getattr(boxes, 'tensor', boxes) * factor  # mmdet box types
        if 'masks' in instances:
            masks = instances.masks
            if not isinstance(masks, torch.Tensor):  # mmdet BitmapMasks / PolygonMasks
                masks = torch.from_numpy(masks.to_ndarray())
            instances.masks = masks.bool().repeat_interleave(factor, 1).repeat_interleave(factor, 2)
        setattr(enlarged, name, instances)
    return enlarged
