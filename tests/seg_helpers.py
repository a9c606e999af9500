"""Helpers of the segmentation tests: config discovery, tiny synthetic data and shrinking a real
ADE20K config to CPU size.

A shrunk config keeps the structure of the original (segmentor, heads, ADE20K augmentation
pipeline, optimizer, schedule, hooks) and changes only sizes: a tiny CoaT, 16-channel necks and
heads, the 4 classes of the synthetic segmentation shapes, image scales and crops divided by 8 and
no pretrained weights.
"""
import copy
import json
from pathlib import Path
from typing import Any, Dict, List

from mmengine.config import Config

from coat_backbone.datasets.shapes import (SEG_CLASSES, SegShapesArgs, generate_seg_shapes,
                                           seg_shapes_paths)
from tiny_archs import TINY_COAT, TINY_LITE

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'
SCALE_DIVISOR = 8
# Head and neck widths of the ADE20K configs -> CPU-test widths (by config key and value).
NARROW = {'channels': {512: 16, 256: 16, 128: 16}, 'out_channels': {256: 16}}
TINY_DATA = SegShapesArgs(num_train=4, num_val=2, img_size=64, max_objects=3, min_radius=6.0,
                          max_radius=14.0, seed=0)


def seg_config_paths() -> List[Path]:
    """The segmentation config files: ADE20K UperNet and Semantic FPN, and the demo."""
    return (sorted(CONFIG_DIR.glob('upernet_coat_*.py')) + sorted(CONFIG_DIR.glob('fpn_coat_*.py'))
            + [CONFIG_DIR / 'demo' / 'fpn_coat_demo_seg.py'])


def make_seg_shapes(root: Path) -> Path:
    """4 train and 2 val images of 64x64 pixels in mmseg's folder layout."""
    return generate_seg_shapes(root, TINY_DATA)


def _shrink_pipeline(node: Any) -> Any:
    """Image scales and crop sizes divided by SCALE_DIVISOR; LoadAnnotations takes the dataset's
    reduce_zero_label (ADE20K's pipelines force True, the synthetic background is a class)."""
    if isinstance(node, list):
        return [_shrink_pipeline(item) for item in node]
    node = dict(node)
    for key in ('scale', 'crop_size'):
        if isinstance(node.get(key), (tuple, list)):
            node[key] = tuple(int(v) // SCALE_DIVISOR for v in node[key])
    if node['type'] == 'LoadAnnotations':
        node.pop('reduce_zero_label', None)
    return node


def _narrow(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, int) and value in NARROW.get(key, {}):
                node[key] = NARROW[key][value]
            elif key == 'num_classes':
                node[key] = len(SEG_CLASSES)
            else:
                _narrow(value)


def make_tiny(cfg: Config, data_root: Path, work_dir: Path, max_iters: int = 2) -> Config:
    """Shrink an ADE20K segmentation config in place (see the module docstring) and return it."""
    arch = TINY_LITE if 'lite' in cfg.model.backbone.arch else TINY_COAT
    dims = arch['embed_dims']
    _narrow(cfg.model)
    cfg.model.backbone.update(arch=copy.deepcopy(arch), init_cfg=None)
    cfg.model.data_preprocessor.size = tuple(
        v // SCALE_DIVISOR for v in cfg.model.data_preprocessor.size)
    if 'neck' in cfg.model:  # Semantic FPN
        cfg.model.neck.in_channels = list(dims)
        cfg.model.decode_head.in_channels = [cfg.model.neck.out_channels] * 4
    else:  # UperNet
        cfg.model.decode_head.in_channels = list(dims)
        cfg.model.auxiliary_head.in_channels = dims[2]
    cfg.custom_imports = dict(imports=['coat_backbone', 'coat_backbone.datasets.seg_dataset'],
                              allow_failed_imports=False)
    for loader_name, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                               ('test_dataloader', 'val')):
        img_dir, ann_dir = seg_shapes_paths(data_root, split)
        loader = cfg[loader_name]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.update(type='SyntheticShapesSegDataset', data_root='',
                              data_prefix=dict(img_path=str(img_dir), seg_map_path=str(ann_dir)),
                              pipeline=_shrink_pipeline(loader.dataset.pipeline))
    cfg.test_pipeline = _shrink_pipeline(cfg.test_pipeline)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = max_iters
    # Visualizers are per-process singletons by name: one per run keeps their outputs apart.
    cfg.visualizer.name = f'visualizer_{work_dir}'
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    return cfg


def tiny_config_file(config: Path, data_root: Path, work_dir: Path, out: Path,
                     max_iters: int = 2) -> Path:
    """Write the shrunk version of `config` to `out` (a flat config file) for the tools."""
    make_tiny(Config.fromfile(config), data_root, work_dir, max_iters).dump(str(out))
    return out


def scalars(work_dir: Path) -> List[Dict[str, Any]]:
    """The records of every run's scalars.json in work_dir, oldest run first."""
    return [json.loads(line) for path in sorted(work_dir.glob('*/vis_data/scalars.json'))
            for line in path.read_text().splitlines()]
