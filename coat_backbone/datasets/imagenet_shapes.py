"""A tiny ImageNet-layout dataset generated on the spot, for the classification demo and tests.

`root/{train,val}/<class>/<class>_NNNNN.JPEG`: eight classes of pictures a small network tells
apart within a minute: filled shapes, a ring and two textures, each class in its own hue, drawn
at random size, position and rotation on a noisy background. Like the detection shapes of
`coat_backbone.datasets.shapes`, every image has its own generator seeded by `(seed, split, class,
index)`, the same arguments give the same bytes, and a `manifest.json` makes a second call free.
"""
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple, Union

import cv2
import numpy as np
from mmengine.logging import print_log

from .common import SPLIT_CODES, claim_directory, dataset_is_current, finish_dataset, write_image

# Alphabetical, so that the folder order (the class index) is the order of this tuple.
SYNTHETIC_CLASSES = ('checker', 'circle', 'cross', 'ring', 'square', 'star', 'stripes', 'triangle')
# Bump when the drawing code changes, so that older datasets on disk are regenerated.
SYNTHETIC_IMAGENET_VERSION = 1
_JPEG_QUALITY = 90
_SUBPIXEL_BITS = 4  # cv2 drawing with 1/16-pixel vertex precision


@dataclass(frozen=True)
class SyntheticImageNetArgs:
    """Arguments of :func:`generate_synthetic_imagenet`; stored in the manifest."""

    num_classes: int = len(SYNTHETIC_CLASSES)
    train_per_class: int = 40
    val_per_class: int = 10
    img_size: int = 64
    seed: int = 0

    def check(self) -> None:
        """Raise ``ValueError`` naming the first argument out of range."""
        if not 2 <= self.num_classes <= len(SYNTHETIC_CLASSES):
            raise ValueError(f'num_classes must be 2..{len(SYNTHETIC_CLASSES)}, got '
                             f'{self.num_classes}')
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise ValueError(f'train_per_class and val_per_class must be >= 1, got '
                             f'{self.train_per_class} and {self.val_per_class}')
        if self.img_size < 32:
            raise ValueError(f'img_size must be >= 32 pixels, got {self.img_size}')


def synthetic_imagenet_files(root: Union[str, Path],
                             args: SyntheticImageNetArgs) -> Dict[str, List[Path]]:
    """The image files of each split, class by class."""
    return {split: [_image_path(Path(root), split, name, index)
                    for name in SYNTHETIC_CLASSES[:args.num_classes] for index in range(count)]
            for split, count in _split_sizes(args).items()}


def _split_sizes(args: SyntheticImageNetArgs) -> Dict[str, int]:
    return dict(train=args.train_per_class, val=args.val_per_class)


def _image_path(root: Path, split: str, name: str, index: int) -> Path:
    return root / split / name / f'{name}_{index:05d}.JPEG'


def generate_synthetic_imagenet(
        root: Union[str, Path],
        args: SyntheticImageNetArgs = SyntheticImageNetArgs()) -> Path:
    """Write the dataset under ``root`` (see the module docstring) and return ``root``.

    Skips all work when ``root`` already holds it for the same arguments and version; refuses a
    non-empty ``root`` that is not a synthetic dataset.
    """
    args.check()
    root = Path(root)
    manifest = dict(generator='synthetic_imagenet', version=SYNTHETIC_IMAGENET_VERSION,
                    args=asdict(args))
    files = synthetic_imagenet_files(root, args)
    if dataset_is_current(root, manifest, [path for paths in files.values() for path in paths]):
        print_log(f'synthetic ImageNet already present in {root}', logger='current')
        return root
    claim_directory(root, manifest['generator'], owned=list(files))
    for split, count in _split_sizes(args).items():
        for label, name in enumerate(SYNTHETIC_CLASSES[:args.num_classes]):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                rng = np.random.default_rng([args.seed, SPLIT_CODES[split], label, index])
                image = render_class_image(rng, name, args.img_size)
                path = _image_path(root, split, name, index)
                write_image(path, image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        print_log(f'wrote {count} {split} images per class, {args.num_classes} classes, to '
                  f'{root / split}', logger='current')
    finish_dataset(root, manifest)
    return root


def render_class_image(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    """One RGB ``uint8`` picture of class ``name``: its shape or texture in a vivid colour whose
    hue is the class's own (8 hues around the colour wheel, +-10 degrees), on a muted background.
    """
    colour = _vivid_colour(rng, SYNTHETIC_CLASSES.index(name))
    if name in _TEXTURES:
        return _TEXTURES[name](rng, size, colour)
    image = _background(rng, size)
    radius = rng.uniform(0.22, 0.4) * size
    centre = rng.uniform(radius, size - radius, size=2)
    _SHAPES[name](image, centre, radius, rng.uniform(0.0, 2.0 * math.pi), colour)
    noise = rng.normal(0.0, 6.0, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _vivid_colour(rng: np.random.Generator, label: int) -> Tuple[float, float, float]:
    # OpenCV hues run over 0..179 (2 degrees per unit).
    hue = (label * 180 // len(SYNTHETIC_CLASSES) + rng.integers(-5, 6)) % 180
    hsv = np.uint8([[[hue, rng.integers(150, 256), rng.integers(150, 256)]]])
    return tuple(float(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Muted colour with smooth blotches (float RGB in 0..255)."""
    blotches = cv2.resize(rng.normal(0.0, 20.0, size=(4, 4, 3)), (size, size),
                          interpolation=cv2.INTER_CUBIC)
    return np.clip(rng.uniform(60.0, 170.0, size=3) + blotches, 0, 255)


def _polygon(image: np.ndarray, centre: np.ndarray, radii: List[float], angle: float,
             colour: Tuple[float, ...]) -> None:
    """Fill the polygon whose i-th vertex is at radii[i], evenly spaced in angle from `angle`."""
    steps = np.arange(len(radii)) * 2.0 * math.pi / len(radii) + angle
    points = centre + np.stack([np.cos(steps), np.sin(steps)], axis=1) * np.asarray(radii)[:, None]
    cv2.fillPoly(image, [np.rint(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)], colour,
                 lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)


def _circle(image, centre, radius, angle, colour) -> None:
    _polygon(image, centre, [radius] * 48, angle, colour)


def _ring(image, centre, radius, angle, colour) -> None:
    before = image.copy()
    _polygon(image, centre, [radius] * 48, angle, colour)
    hole = np.zeros(image.shape[:2], np.uint8)
    _polygon(hole, centre, [radius * 0.55] * 48, angle, (1,))
    image[hole > 0] = before[hole > 0]


def _square(image, centre, radius, angle, colour) -> None:
    _polygon(image, centre, [radius] * 4, angle, colour)


def _triangle(image, centre, radius, angle, colour) -> None:
    _polygon(image, centre, [radius * 1.15] * 3, angle, colour)


def _star(image, centre, radius, angle, colour) -> None:
    _polygon(image, centre, [radius * 1.1, radius * 0.45] * 5, angle, colour)


def _cross(image, centre, radius, angle, colour) -> None:
    # A plus sign: the union of two bars of length 2R and width R/2.
    half_width, length = radius * 0.27, radius * 1.1
    corner = math.hypot(half_width, length)
    spread = math.atan2(half_width, length)
    for bar in (0.0, math.pi / 2):
        steps = np.array([spread, math.pi - spread, math.pi + spread, -spread]) + angle + bar
        points = centre + corner * np.stack([np.cos(steps), np.sin(steps)], axis=1)
        cv2.fillPoly(image, [np.rint(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)], colour,
                     lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)


def _wave(rng: np.random.Generator, size: int, angle: float) -> np.ndarray:
    """+1/-1 bands across the image, perpendicular to `angle`, 4-6 bands per image width."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    period = rng.uniform(1 / 6, 1 / 4) * size
    phase = rng.uniform(0.0, 2.0 * math.pi)
    return np.sign(np.sin(2.0 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period
                          + phase))


def _two_tone(rng: np.random.Generator, pattern: np.ndarray,
              colour: Tuple[float, ...]) -> np.ndarray:
    first, second = np.array(colour), rng.uniform(20.0, 120.0, size=3)
    image = np.where(pattern[..., None] > 0, first, second)
    return np.clip(image + rng.normal(0.0, 6.0, size=image.shape), 0, 255).astype(np.uint8)


def _stripes(rng: np.random.Generator, size: int, colour: Tuple[float, ...]) -> np.ndarray:
    return _two_tone(rng, _wave(rng, size, rng.uniform(0.0, math.pi)), colour)


def _checker(rng: np.random.Generator, size: int, colour: Tuple[float, ...]) -> np.ndarray:
    angle = rng.uniform(0.0, math.pi)
    return _two_tone(rng, _wave(rng, size, angle) * _wave(rng, size, angle + math.pi / 2), colour)


_SHAPES: Dict[str, Callable] = dict(circle=_circle, cross=_cross, ring=_ring, square=_square,
                                    star=_star, triangle=_triangle)
_TEXTURES: Dict[str, Callable] = dict(checker=_checker, stripes=_stripes)
