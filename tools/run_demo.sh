#!/usr/bin/env bash
# The demo (README): set up the environment once, then generate the synthetic shapes dataset, train
# Mask R-CNN + CoaT from scratch and evaluate it. Results go to work_dirs/demo/ and the data to
# data/, in the current folder. Extra arguments are passed to tools/demo_synthetic.py (see --help).
set -euo pipefail
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/launcher.sh"  # also through a symlink
bash "$COAT_ROOT/tools/setup_env.sh"
# OpenMP threads that spin while they wait stall each other when other processes share the cores:
# a training step on 2 busy cores took 4.2 s with the default policy and 0.8 s with PASSIVE.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$COAT_VENV/bin/python" "$COAT_ROOT/tools/demo_synthetic.py" "$@"
