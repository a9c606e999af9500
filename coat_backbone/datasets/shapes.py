"""The shape scenes of the detection and segmentation demos: coloured circles, squares and
triangles on textured backgrounds, as a COCO instance-segmentation dataset
(`generate_coco_shapes`) and as per-pixel label maps in MMSegmentation's folder layout
(`generate_seg_shapes`).

Every image is drawn from its own generator seeded by ``(seed, split, index)``, so a dataset does
not depend on global random state, on generation order or on the machine: the same arguments give
the same bytes.
"""
import colorsys
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Tuple, Union

import cv2
import numpy as np
from mmengine.logging import print_log

from .common import SPLIT_CODES, claim_directory, dataset_is_current, finish_dataset, write_image

SHAPE_CLASSES = ('circle', 'square', 'triangle')
# Bump when the drawing code changes, so that older datasets on disk are regenerated.
COCO_SHAPES_VERSION = 1
# Objects drawn later may hide at most this share of an earlier object, so every annotated
# instance stays recognisable.
_MAX_OCCLUDED = 0.5
_PLACEMENT_TRIES = 20


@dataclass(frozen=True)
class CocoShapesArgs:
    """Arguments of :func:`generate_coco_shapes`; stored in the manifest."""

    num_train: int = 400
    num_val: int = 100
    img_size: int = 128
    max_objects: int = 4
    min_radius: float = 8.0
    max_radius: float = 24.0
    seed: int = 0

    def check(self) -> None:
        """Raise ``ValueError`` naming the first argument out of range."""
        if self.num_train < 1 or self.num_val < 1:
            raise ValueError(f'num_train and num_val must be >= 1, got {self.num_train} and '
                             f'{self.num_val}')
        if self.img_size < 32:
            raise ValueError(f'img_size must be >= 32 pixels, got {self.img_size}')
        if self.max_objects < 1:
            raise ValueError(f'max_objects must be >= 1, got {self.max_objects}')
        if not 2 <= self.min_radius <= self.max_radius <= self.img_size / 4:
            raise ValueError('need 2 <= min_radius <= max_radius <= img_size / 4, got '
                             f'min_radius={self.min_radius}, max_radius={self.max_radius}, '
                             f'img_size={self.img_size}')


def coco_shapes_paths(root: Union[str, Path], split: str) -> Tuple[Path, Path]:
    """``(annotation file, image folder)`` of a split written by :func:`generate_coco_shapes`."""
    if split not in SPLIT_CODES:
        raise ValueError(f'split must be one of {sorted(SPLIT_CODES)}, got {split!r}')
    root = Path(root)
    return root / 'annotations' / f'instances_{split}.json', root / split


def generate_coco_shapes(root: Union[str, Path], args: CocoShapesArgs = CocoShapesArgs()) -> Path:
    """Write a COCO instance-segmentation dataset of coloured shapes on textured backgrounds.

    Layout: ``root/{train,val}/NNNNNN.png``, ``root/annotations/instances_{train,val}.json`` with
    RLE masks of the visible (occlusion-aware) part of each shape, and ``root/manifest.json``.
    Skips all work when ``root`` already holds the dataset for the same arguments and version.
    """
    args.check()
    root = Path(root)
    manifest = dict(generator='coco_shapes', version=COCO_SHAPES_VERSION, args=asdict(args))
    counts = dict(train=args.num_train, val=args.num_val)
    expected = [path for split, num in counts.items()
                for path in _coco_split_files(root, split, num)]
    if dataset_is_current(root, manifest, expected):
        print_log(f'synthetic COCO shapes already present in {root}', logger='current')
        return root
    claim_directory(root, manifest['generator'], owned=['train', 'val', 'annotations'])
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(SHAPE_CLASSES)]
    for split, num in counts.items():
        ann_file, img_dir = coco_shapes_paths(root, split)
        img_dir.mkdir(parents=True, exist_ok=True)
        images: List[dict] = []
        annotations: List[dict] = []
        for index in range(num):
            rng = np.random.default_rng([args.seed, SPLIT_CODES[split], index])
            image, instances = render_shapes_scene(rng, args)
            file_name = f'{index:06d}.png'
            write_image(img_dir / file_name, image[..., ::-1])
            images.append(dict(id=index + 1, file_name=file_name, height=args.img_size,
                               width=args.img_size))
            for label, mask in instances:
                annotations.append(_coco_annotation(len(annotations) + 1, index + 1, label, mask))
        ann_file.parent.mkdir(parents=True, exist_ok=True)
        dataset = dict(info=dict(description='coat-backbone synthetic shapes',
                                 version=str(COCO_SHAPES_VERSION)),
                       images=images, annotations=annotations, categories=categories)
        ann_file.write_text(json.dumps(dataset, separators=(',', ':')))
        print_log(f'wrote {num} {split} images with {len(annotations)} instances to {img_dir}',
                  logger='current')
    finish_dataset(root, manifest)
    return root


def render_shapes_scene(rng: np.random.Generator,
                        args: CocoShapesArgs) -> Tuple[np.ndarray, List[Tuple[int, np.ndarray]]]:
    """Draw one scene: an RGB ``uint8`` image and ``(class index, visible bool mask)`` per shape.

    Shapes are painted in order, each later one on top, so masks are the visible parts. A placement
    that would hide more than half of an earlier shape is retried (a shape that finds no place is
    left out), so no instance is mostly hidden; the first shape is always drawn.
    """
    size = args.img_size
    image = _background(rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    labels: List[int] = []
    full_areas: List[int] = []
    visible: List[np.ndarray] = []
    for _ in range(int(rng.integers(1, args.max_objects + 1))):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        radius = rng.uniform(args.min_radius, args.max_radius)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        for _ in range(_PLACEMENT_TRIES):
            centre = rng.uniform(radius, size - radius, size=2)
            mask = _shape_mask(SHAPE_CLASSES[label], centre, radius, angle, xx, yy)
            remaining = [np.count_nonzero(old & ~mask) for old in visible]
            if all(left >= (1.0 - _MAX_OCCLUDED) * area
                   for left, area in zip(remaining, full_areas)):
                break
        else:
            continue
        visible = [old & ~mask for old in visible]
        labels.append(label)
        full_areas.append(int(np.count_nonzero(mask)))
        visible.append(mask)
        _paint(rng, image, mask, xx, yy)
    return np.rint(image).astype(np.uint8), list(zip(labels, visible))


def _coco_split_files(root: Path, split: str, num: int) -> List[Path]:
    """All files of one split, for the up-to-date check."""
    ann_file, img_dir = coco_shapes_paths(root, split)
    return [ann_file] + [img_dir / f'{index:06d}.png' for index in range(num)]


def _coco_annotation(ann_id: int, image_id: int, label: int, mask: np.ndarray) -> dict:
    """COCO annotation whose box and area are computed from the RLE itself (always consistent)."""
    # Imported here: pycocotools comes with the [det] extra, and the segmentation and
    # classification generators share this module's helpers without it.
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    return dict(id=ann_id, image_id=image_id, category_id=label + 1, iscrowd=0,
                area=float(mask_utils.area(rle)), bbox=bbox,
                segmentation=dict(size=[int(v) for v in rle['size']],
                                  counts=rle['counts'].decode('ascii')))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Muted base colour, smooth low-frequency blotches and pixel noise (float RGB in 0..255)."""
    base = rng.uniform(70.0, 190.0, size=3)
    blotches = cv2.resize(rng.normal(0.0, 25.0, size=(5, 5, 3)), (size, size),
                          interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0.0, 10.0, size=(size, size, 3))
    return np.clip(base + blotches + noise, 0, 255)


def _shape_mask(kind: str, centre: np.ndarray, radius: float, angle: float, xx: np.ndarray,
                yy: np.ndarray) -> np.ndarray:
    """Boolean mask of a shape; squares and triangles get the area of the circle of ``radius``."""
    dx, dy = xx - centre[0], yy - centre[1]
    if kind == 'circle':
        return dx * dx + dy * dy <= radius * radius
    # Circumradius giving the same area as the circle: square pi r^2 = 2 R^2,
    # equilateral triangle pi r^2 = (3 sqrt(3) / 4) R^2.
    if kind == 'square':
        corners, circumradius = 4, radius * math.sqrt(math.pi / 2.0)
    else:
        corners, circumradius = 3, radius * math.sqrt(4.0 * math.pi / (3.0 * math.sqrt(3.0)))
    # A regular polygon is the intersection of half-planes at the apothem along each edge normal.
    apothem = circumradius * math.cos(math.pi / corners)
    inside = np.ones_like(xx, dtype=bool)
    for k in range(corners):
        normal = angle + (2 * k + 1) * math.pi / corners
        inside &= dx * math.cos(normal) + dy * math.sin(normal) <= apothem
    return inside


def _paint(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, xx: np.ndarray,
           yy: np.ndarray) -> None:
    """Fill ``mask`` with a saturated random colour, a linear shading and light noise (in place)."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.45, 1.0)
    colour = 255.0 * np.array(colorsys.hsv_to_rgb(hue, sat, val))
    slope = rng.normal(0.0, 0.6, size=2)
    shading = (xx[mask] - xx[mask].mean()) * slope[0] + (yy[mask] - yy[mask].mean()) * slope[1]
    noise = rng.normal(0.0, 5.0, size=(shading.size, 3))
    image[mask] = np.clip(colour + shading[:, None] + noise, 0, 255)


# --------------------------------------------------------------------------------------------------
# Semantic segmentation: the same shape scenes as per-pixel label maps, in MMSegmentation's folder
# layout, read by `coat_backbone.datasets.seg_dataset.SyntheticShapesSegDataset`.
# --------------------------------------------------------------------------------------------------

# Label 0 is the background; shape class i of SHAPE_CLASSES is label i + 1.
SEG_CLASSES = ('background', ) + SHAPE_CLASSES
# The fill pattern of each shape class (in SHAPE_CLASSES order), random in period and orientation.
# Texture is a local cue that a network trained for minutes on a CPU picks up, where shape alone,
# a per-pixel decision that needs the whole object, takes far longer.
SEG_PATTERNS = ('stripes', 'checks', 'plain')
# Bump when the drawing, the label maps or the layout change, so that older datasets on disk are
# regenerated.
SEG_SHAPES_VERSION = 1


@dataclass(frozen=True)
class SegShapesArgs(CocoShapesArgs):
    """Arguments of :func:`generate_seg_shapes`: the scene arguments of the COCO shapes (same fields
    and defaults), under their own type so that a config names the generator it is meant for."""


def seg_shapes_paths(root: Union[str, Path], split: str) -> Tuple[Path, Path]:
    """``(image folder, label-map folder)`` of a split written by :func:`generate_seg_shapes`."""
    if split not in SPLIT_CODES:
        raise ValueError(f'split must be one of {sorted(SPLIT_CODES)}, got {split!r}')
    root = Path(root)
    return root / 'img_dir' / split, root / 'ann_dir' / split


def generate_seg_shapes(root: Union[str, Path], args: SegShapesArgs = SegShapesArgs()) -> Path:
    """Write a semantic-segmentation dataset of coloured shapes on textured backgrounds.

    Layout (MMSegmentation's): ``root/img_dir/{train,val}/NNNNNN.png`` RGB images and
    ``root/ann_dir/{train,val}/NNNNNN.png`` single-channel ``uint8`` label maps (values index
    :data:`SEG_CLASSES`), and ``root/manifest.json``. The scenes are those of
    :func:`render_shapes_scene`, each shape then overlaid with its class's pattern
    (:data:`SEG_PATTERNS`); where shapes overlap, the visible one labels the pixel. Skips all work
    when ``root`` already holds the dataset for the same arguments and version.
    """
    args.check()
    root = Path(root)
    manifest = dict(generator='seg_shapes', version=SEG_SHAPES_VERSION, args=asdict(args))
    counts = dict(train=args.num_train, val=args.num_val)
    expected = [folder / f'{index:06d}.png' for split, num in counts.items()
                for folder in seg_shapes_paths(root, split) for index in range(num)]
    if dataset_is_current(root, manifest, expected):
        print_log(f'synthetic segmentation shapes already present in {root}', logger='current')
        return root
    claim_directory(root, manifest['generator'], owned=['img_dir', 'ann_dir'])
    for split, num in counts.items():
        img_dir, ann_dir = seg_shapes_paths(root, split)
        img_dir.mkdir(parents=True)
        ann_dir.mkdir(parents=True)
        pixels = np.zeros(len(SEG_CLASSES), dtype=np.int64)
        for index in range(num):
            rng = np.random.default_rng([args.seed, SPLIT_CODES[split], index])
            image, instances = render_shapes_scene(rng, args)
            label_map = np.zeros(image.shape[:2], dtype=np.uint8)
            for label, mask in instances:  # visible masks are disjoint
                _overlay_pattern(rng, image, mask, SEG_PATTERNS[label])
                label_map[mask] = label + 1
            pixels += np.bincount(label_map.ravel(), minlength=len(SEG_CLASSES))
            file_name = f'{index:06d}.png'
            for path, data in ((img_dir / file_name, image[..., ::-1]),
                               (ann_dir / file_name, label_map)):
                write_image(path, data)
        shares = ', '.join(f'{name} {count / pixels.sum():.1%}'
                           for name, count in zip(SEG_CLASSES, pixels))
        print_log(f'wrote {num} {split} images and label maps to {img_dir.parent.parent} '
                  f'(pixels: {shares})', logger='current')
    finish_dataset(root, manifest)
    return root


def _overlay_pattern(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray,
                     pattern: str) -> None:
    """Darken alternate bands (stripes, 2-3 pixels wide) or cells (checks, 8-12 pixels wide) of
    ``mask`` at a random orientation; 'plain' leaves the shape as painted (in place). The two
    patterns differ in scale as well as in layout, so that both show through a 4x4 patch
    embedding: stripes vary within a patch, checks between patches."""
    width, angle = rng.uniform(2.0, 3.0), rng.uniform(0.0, math.pi)
    if pattern == 'plain':
        return
    yy, xx = np.nonzero(mask)
    u = xx * math.cos(angle) + yy * math.sin(angle)
    if pattern == 'stripes':
        dark = np.floor(u / width) % 2 == 1
    else:
        width *= 4.0
        v = yy * math.cos(angle) - xx * math.sin(angle)
        dark = (np.floor(u / width) + np.floor(v / width)) % 2 == 1
    shade = np.where(dark, 0.45, 1.0)[:, None]
    image[yy, xx] = np.rint(image[yy, xx] * shade).astype(np.uint8)
