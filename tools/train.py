#!/usr/bin/env python
"""Train a detector (MMDetection config) or segmentor (MMSegmentation config).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp]
        [--auto-scale-lr] [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes: tools/dist_train.sh CONFIG N, or tools/slurm_train.sh. The logic lives in
coat_backbone.engine.cli so that it is the same from a checkout and from an installed package.
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
