"""MMSegmentation pieces of the segmentation demo: the synthetic shapes dataset and pictures of
predictions.

Importing this module needs mmseg; it registers `SyntheticShapesSegDataset` in mmseg's `DATASETS`,
so a config with `custom_imports=dict(imports=['coat_backbone', 'coat_backbone.segmentation'])`
can name it under the `mmseg` scope.
"""
from pathlib import Path
from typing import List, Sequence, Union

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseModel
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .synthetic import SEG_CLASSES
from .visualization import enlarge_image, side_by_side

# RGB colour per class of SEG_CLASSES; shapes as in the detection demo's palette.
SEG_PALETTE = [(0, 0, 0), (220, 20, 60), (0, 160, 80), (30, 90, 255)]
IGNORE_COLOUR = (255, 255, 255)  # label 255, mmseg's ignore index
_GAP = 8
_STRIP = 26


@DATASETS.register_module()
class SyntheticShapesSegDataset(BaseSegDataset):
    """The dataset of `coat_backbone.synthetic.generate_seg_shapes`: PNG images and PNG label maps
    with the same file names, label 0 the background (a class, not ignored)."""

    METAINFO = dict(classes=SEG_CLASSES, palette=SEG_PALETTE)

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault('img_suffix', '.png')
        kwargs.setdefault('seg_map_suffix', '.png')
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(
                f'No {self.img_suffix} images in {self.data_prefix.get("img_path")}: generate the '
                f'dataset first, with coat_backbone.synthetic.generate_seg_shapes (the demo, '
                f'tools/run_demo_seg.sh, does it), or point data_root at it.')
        return data_list


def colourise(label_map: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) integer labels -> (H, W, 3) RGB picture; labels outside the palette are white."""
    lookup = np.full((256, 3), IGNORE_COLOUR, dtype=np.uint8)
    lookup[:len(palette)] = np.asarray(palette, dtype=np.uint8)
    return lookup[np.clip(label_map, 0, 255)]


@torch.no_grad()
def save_segmentation_panels(model: BaseModel, dataset: BaseSegDataset,
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
        rows.append(side_by_side([enlarge_image(panel, upscale) for panel in panels], _GAP))
    width = max(row.shape[1] for row in rows)
    panel_width = (rows[0].shape[1] - 2 * _GAP) // 3
    picture = [_titles(('image', 'ground truth', 'prediction'), panel_width, width)]
    for row in rows:
        picture += [_pad_width(row, width), np.full((_GAP, width, 3), 255, dtype=np.uint8)]
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
        _text(strip, title, i * (panel_width + _GAP) + 4)
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
