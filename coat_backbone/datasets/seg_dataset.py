"""The mmseg dataset class of the segmentation demo's generated scenes (`generate_seg_shapes`).

Importing this module needs mmseg; it registers `SyntheticShapesSegDataset` in mmseg's `DATASETS`,
so a config that imports it (`custom_imports=dict(imports=['coat_backbone',
'coat_backbone.datasets.seg_dataset'])`) can name it under the `mmseg` scope.
"""
from typing import List

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .shapes import SEG_CLASSES

# RGB colour per class of SEG_CLASSES; shapes as in the detection demo's palette.
SEG_PALETTE = [(0, 0, 0), (220, 20, 60), (0, 160, 80), (30, 90, 255)]


@DATASETS.register_module()
class SyntheticShapesSegDataset(BaseSegDataset):
    """The dataset of `coat_backbone.datasets.generate_seg_shapes`: PNG images and PNG label maps
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
                f'dataset first, with coat_backbone.datasets.generate_seg_shapes (the demo, '
                f'tools/run_demo_seg.sh, does it), or point data_root at it.')
        return data_list
