"""Predictions next to the ground truth, drawn from a model's ``test_step`` outputs: a detector's
gallery (through the config's ``DetLocalVisualizer``) and a segmentor's panels (image | ground
truth | prediction). (Training curves: `training_logs`.)
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
IGNORE_COLOUR = (255, 255, 255)  # label 255, mmseg's ignore index
_SEG_GAP = 8
_STRIP = 26


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


def colourise(label_map: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) integer labels -> (H, W, 3) RGB picture; labels outside the palette are white."""
    lookup = np.full((256, 3), IGNORE_COLOUR, dtype=np.uint8)
    lookup[:len(palette)] = np.asarray(palette, dtype=np.uint8)
    return lookup[np.clip(label_map, 0, 255)]


@torch.no_grad()
def save_segmentation_panels(model: BaseModel, dataset: BaseDataset,
                             out_file: Union[str, Path], indices: Sequence[int],
                             upscale: int = 2) -> Path:
    """Predict ``dataset[indices]`` and save one PNG with a row per item: image | ground truth |
    prediction, then a legend of the classes' colours.

    ``dataset`` must load the annotations in its pipeline (mmseg's test pipelines do), and its
    ``metainfo`` needs ``classes`` and ``palette``. Pictures are enlarged ``upscale`` times (nearest
    neighbour) so that small synthetic images stay legible.
    """
    if not indices:
        raise ValueError('indices is empty: name at least one dataset item to draw')
    classes, palette = dataset.metainfo['classes'], dataset.metainfo['palette']
    model.eval()
    rows = []
    for index in indices:
        sample = model.test_step(pseudo_collate([dataset[index]]))[0].cpu()
        if 'gt_sem_seg' not in sample:
            raise ValueError('dataset items carry no ground truth: add LoadAnnotations to the '
                             'pipeline of the dataset passed to save_segmentation_panels')
        image = mmcv.imread(sample.img_path, channel_order='rgb')
        # All three at the original image size: mmseg resizes predictions back to it.
        panels = [image, colourise(sample.gt_sem_seg.data[0].numpy(), palette),
                  colourise(sample.pred_sem_seg.data[0].numpy(), palette)]
        rows.append(side_by_side([enlarge_image(panel, upscale) for panel in panels], _SEG_GAP))
    width = max(row.shape[1] for row in rows)
    panel_width = (rows[0].shape[1] - 2 * _SEG_GAP) // 3
    picture = [_titles(('image', 'ground truth', 'prediction'), panel_width, width)]
    for row in rows:
        picture += [_pad_width(row, width), np.full((_SEG_GAP, width, 3), 255, dtype=np.uint8)]
    picture.append(_legend(classes, palette, width))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(np.concatenate(picture, axis=0)), str(out_file))
    return out_file


def _pad_width(image: np.ndarray, width: int) -> np.ndarray:
    return np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=255)


def _text(strip: np.ndarray, text: str, x: int) -> None:
    cv2.putText(strip, text, (x, _STRIP - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)


def _titles(titles: Sequence[str], panel_width: int, width: int) -> np.ndarray:
    strip = np.full((_STRIP, width, 3), 255, dtype=np.uint8)
    for i, title in enumerate(titles):
        _text(strip, title, i * (panel_width + _SEG_GAP) + 4)
    return strip


def _legend(classes: Sequence[str], palette: Sequence[Sequence[int]], width: int) -> np.ndarray:
    """One strip of colour swatches with class names, wrapped onto more strips when too wide."""
    strips, x = [np.full((_STRIP, width, 3), 255, dtype=np.uint8)], 4
    for name, colour in zip(classes, palette):
        item_width = 22 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0] + 14
        if x + item_width > width and x > 4:
            strips.append(np.full((_STRIP, width, 3), 255, dtype=np.uint8))
            x = 4
        cv2.rectangle(strips[-1], (x, 6), (x + 16, _STRIP - 6), tuple(int(c) for c in colour), -1)
        cv2.rectangle(strips[-1], (x, 6), (x + 16, _STRIP - 6), (0, 0, 0), 1)
        _text(strips[-1], name, x + 22)
        x += item_width
    return np.concatenate(strips, axis=0)
