"""Shared fixtures. Detection: a tiny synthetic COCO instance-segmentation dataset."""
from pathlib import Path

import pytest

from coat_backbone.datasets.shapes import CocoShapesArgs, generate_coco_shapes


@pytest.fixture(scope='session')
def coco_shapes(tmp_path_factory) -> Path:
    """8 train and 4 val images of 64x64 pixels with 1-3 shapes each (3 classes)."""
    return generate_coco_shapes(
        tmp_path_factory.mktemp('coco_shapes'),
        CocoShapesArgs(num_train=8, num_val=4, img_size=64, max_objects=3, min_radius=6.0,
                       max_radius=14.0, seed=0))
