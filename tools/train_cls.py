#!/usr/bin/env python
"""Pretrain or fine-tune a CoaT classifier on ImageNet (configs/imagenet/).

    python tools/train_cls.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes: tools/dist_train.sh CONFIG N (gloo processes on a CPU-only machine), or
tools/slurm_train.sh. Classification configs run on the same command line, launcher and reliability
hooks as detection and segmentation (coat_backbone.engine); the config decides what is trained.
Checkpoints go to <work_dir>/epoch_N.pth; their `state_dict` initialises the detection and
segmentation backbones directly (init_cfg=dict(type='Pretrained', checkpoint=...)).
"""
import sys
from pathlib import Path

# From a checkout, use its coat_backbone even when the package is not installed.
ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'coat_backbone').is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from coat_backbone.engine.cli import train_main  # noqa: E402

if __name__ == '__main__':
    train_main()
