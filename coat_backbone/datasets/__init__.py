"""The datasets the demos and tests generate on the spot (no dataset can be downloaded where they
run): shape scenes for detection and segmentation (`shapes`) and an ImageNet-layout folder of
eight classes (`imagenet_shapes`). Generating needs neither mmdet nor mmseg; the mmseg dataset
class that reads the segmentation scenes is in `seg_dataset`, imported by the configs that use it.
"""
from .imagenet_shapes import (SYNTHETIC_CLASSES, SyntheticImageNetArgs,
                              generate_synthetic_imagenet, synthetic_imagenet_files)
from .shapes import (SEG_CLASSES, SHAPE_CLASSES, CocoShapesArgs, SegShapesArgs, coco_shapes_paths,
                     generate_coco_shapes, generate_seg_shapes, seg_shapes_paths)

__all__ = [
    'CocoShapesArgs', 'SEG_CLASSES', 'SHAPE_CLASSES', 'SYNTHETIC_CLASSES', 'SegShapesArgs',
    'SyntheticImageNetArgs', 'coco_shapes_paths', 'generate_coco_shapes', 'generate_seg_shapes',
    'generate_synthetic_imagenet', 'seg_shapes_paths', 'synthetic_imagenet_files'
]
