#!/usr/bin/env python
"""Evaluate a checkpoint on the test set of an MMDetection or MMSegmentation config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--show] [--show-dir DIR]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes: tools/dist_test.sh CONFIG CHECKPOINT N, or tools/slurm_test.sh.
"""
import sys
from pathlib import Path

# From a checkout, use its coat_backbone even when the package is not installed.
ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'coat_backbone').is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from coat_backbone.engine.cli import test_main  # noqa: E402

if __name__ == '__main__':
    test_main()
