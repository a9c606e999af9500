"""A detector's predictions next to the ground truth: a gallery drawn from the model's
``test_step`` outputs by the config's ``DetLocalVisualizer``. (Training curves: `training_logs`.)
"""
from pathlib import Path
from typing import Sequence, Union

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dataset import BaseDataset, pseudo_collate
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement, InstanceData
from mmengine.visualization import Visualizer

_GAP = 12  # white pixels between gallery tiles
_TITLE_HEIGHT = 28


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
        visualizer.add_datasample(f'item{index}', enlarge_image(image, upscale),
                                  data_sample=_enlarge_sample(sample, upscale), draw_gt=True,
                                  draw_pred=True, pred_score_thr=score_thr)
        tiles.append(_with_titles(visualizer.get_image(),
                                  ('ground truth', f'prediction (score >= {score_thr:g})')))
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    rows = [side_by_side(tiles[i:i + columns], _GAP) for i in range(0, len(tiles), columns)]
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


def enlarge_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so that small synthetic images stay legible."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def side_by_side(panels: Sequence[np.ndarray], gap: int) -> np.ndarray:
    """RGB panels of one height in a row, `gap` white pixels between them."""
    white = np.full((panels[0].shape[0], gap, 3), 255, dtype=np.uint8)
    return np.concatenate([part for panel in panels for part in (panel, white)][:-1], axis=1)


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
