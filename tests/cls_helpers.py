"""Helpers of the classification tests: the demo config shrunk further, written for the tools.

The shrunk config keeps the whole ImageNet recipe (timm augmentation, Mixup/CutMix, repeated
augmentation, AdamW with paramwise decay, warm-up + cosine, EMA, the reliability hooks) and the
demo's small CoaT-Lite-style network (it learns the synthetic classes in a few epochs, where
narrower ones with parallel blocks need several times more), and runs only a few epochs.
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

from mmengine.config import Config

from coat_backbone.engine.demo import LOADER_SPLITS, read_generated_data

REPO = Path(__file__).resolve().parents[1]
IMAGENET_CONFIGS = REPO / 'configs' / 'imagenet'
DEMO_CONFIG = IMAGENET_CONFIGS / 'demo_synthetic_imagenet.py'
TOOLS = REPO / 'tools'


def tiny_cls_config(data_root: Path, work_dir: Path, max_epochs: int) -> Config:
    """The demo config on `data_root`: one warm-up epoch, validation and a checkpoint every 2
    epochs."""
    cfg = Config.fromfile(DEMO_CONFIG)
    read_generated_data(cfg, data_root)
    for loader in LOADER_SPLITS:
        cfg[loader].update(num_workers=0, persistent_workers=False)
    cfg.train_cfg.max_epochs = max_epochs
    warmup, cosine = cfg.param_scheduler
    warmup.end = 1
    cosine.update(begin=1, end=max_epochs, T_max=max_epochs - 1)
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.default_hooks.logger.interval = 1
    # A few dozen steps in all: the weight average follows the last ~10 of them.
    ema = next(hook for hook in cfg.custom_hooks if hook.type == 'EMAHook')
    ema.momentum = 0.1
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    return cfg


def write_config(cfg: Config, path: Path) -> Path:
    """Dump `cfg` as a flat config file the tools can read."""
    cfg.dump(str(path))
    return path


def run_script(args: List[str], env: Dict[str, str], timeout: float = 300) -> str:
    """Run a tools/ shell script with this interpreter from the repository root; its output."""
    full_env = {**os.environ, 'COAT_VENV': sys.prefix, 'OMP_NUM_THREADS': '1', **env}
    result = subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True,
                            timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f'{args} failed:\n{output[-6000:]}'
    return output
