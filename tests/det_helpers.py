"""Helpers of the detection tests: config discovery and shrinking a real config to CPU size.

A shrunk config keeps the structure of the original (model type, heads, augmentation pipeline,
optimizer, hooks) and changes only sizes: a tiny CoaT, narrow necks and heads (256 -> 32 channels,
2 transformer layers, 100 queries), 3 classes, the synthetic shapes dataset, image scales divided
by 10 and no pretrained weights.
"""
import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from mmengine.config import Config

from coat_backbone.datasets.shapes import SHAPE_CLASSES, coco_shapes_paths
from tiny_archs import TINY_COAT

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'
TOOLS = REPO / 'tools'
# A tiny CoaT with every part: serial and parallel blocks, 8 heads over the CRPE windows.
TINY_ARCH = TINY_COAT
SCALE_DIVISOR = 10
# Widths and depths of mmdet's heads, necks and transformers -> CPU-test sizes (by config key).
NARROW = {
    'out_channels': {256: 32}, 'in_channels': {256: 32}, 'feat_channels': {256: 32},
    'conv_out_channels': {256: 32}, 'fc_out_channels': {1024: 64}, 'embed_dims': {256: 32},
    'feedforward_channels': {1024: 64}, 'num_feats': {128: 16}, 'num_queries': {300: 100},
    'num_layers': {6: 2}, 'num_groups': {32: 8},
}


def config_paths() -> List[Path]:
    """Every runnable config file under configs/ (bases excluded)."""
    return sorted(p for p in CONFIG_DIR.rglob('*.py') if '_base_' not in p.parts)


def shrink_pipeline(node: Any) -> Any:
    """Divide every image scale and crop size in a pipeline by SCALE_DIVISOR."""
    if isinstance(node, list):
        return [shrink_pipeline(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    for key in ('scale', 'crop_size'):
        if isinstance(node.get(key), (tuple, list)):
            node[key] = tuple(int(v) // SCALE_DIVISOR for v in node[key])
    if 'scales' in node:
        node['scales'] = [tuple(int(v) // SCALE_DIVISOR for v in scale) for scale in node['scales']]
    if 'transforms' in node:
        node['transforms'] = shrink_pipeline(node['transforms'])
    return node


def narrow(node: Any) -> None:
    """Apply NARROW to every matching key/value pair under `node` (dicts and lists)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, int) and value in NARROW.get(key, {}):
                node[key] = NARROW[key][value]
            else:
                narrow(value)
    elif isinstance(node, list):
        for child in node:
            narrow(child)


def _set_everywhere(node: Any, key: str, value: Any) -> None:
    if isinstance(node, dict):
        if key in node:
            node[key] = value
        for child in node.values():
            _set_everywhere(child, key, value)
    elif isinstance(node, list):
        for child in node:
            _set_everywhere(child, key, value)


def make_tiny(cfg: Config, data_root: Path, work_dir: Path, max_epochs: int = 1) -> Config:
    """Shrink a detection config in place (see the module docstring) and return it."""
    narrow(cfg.model)
    if 'DETR' in cfg.model.type:  # the DETR heads' width is a default (256), not in the config
        cfg.model.bbox_head.embed_dims = NARROW['embed_dims'][256]
    backbone = cfg.model.backbone
    backbone.arch = copy.deepcopy(TINY_ARCH)
    backbone.init_cfg = None
    cfg.model.neck.in_channels = [TINY_ARCH['embed_dims'][i] for i in backbone.out_indices]
    _set_everywhere(cfg.model, 'num_classes', len(SHAPE_CLASSES))
    for loader_name, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                               ('test_dataloader', 'val')):
        ann_file, img_dir = coco_shapes_paths(data_root, split)
        loader = cfg[loader_name]
        loader.update(num_workers=0, persistent_workers=False)
        dataset = loader.dataset
        dataset.update(data_root='', ann_file=str(ann_file), data_prefix=dict(img=f'{img_dir}/'),
                       metainfo=dict(classes=SHAPE_CLASSES),
                       pipeline=shrink_pipeline(dataset.pipeline))
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.ann_file = str(coco_shapes_paths(data_root, 'val')[0])
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = max_epochs
    cfg.default_hooks.logger.interval = 1
    # Visualizers are per-process singletons by name: one per run keeps their outputs apart.
    cfg.visualizer.name = f'visualizer_{work_dir}'
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    return cfg


def tiny_config_file(config: Path, data_root: Path, work_dir: Path, out: Path,
                     max_epochs: int = 1) -> Path:
    """Write the shrunk version of `config` to `out` (a flat config file) for the tools."""
    cfg = make_tiny(Config.fromfile(config), data_root, work_dir, max_epochs)
    cfg.dump(str(out))
    return out


def run_tool(args: List[str], env: Optional[Dict[str, str]] = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a tools/ script with this interpreter, from the repository root; fail with its output."""
    full_env = {**os.environ, 'COAT_VENV': sys.prefix, 'OMP_NUM_THREADS': '1', **(env or {})}
    command = args if args[0].endswith('.sh') else [sys.executable, *args]
    result = subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True,
                            timeout=timeout)
    output = f'{result.stdout[-3000:]}\n{result.stderr[-5000:]}'
    assert result.returncode == 0, f'{args} failed:\n{output}'
    return result
