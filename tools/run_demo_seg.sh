#!/usr/bin/env bash
# The segmentation demo (README): set up the environment once, then generate the synthetic
# segmentation shapes, train Semantic FPN + CoaT from scratch and evaluate it. Results go to
# work_dirs/demo_seg/ and the data to data/, in the current folder. Extra arguments are passed to
# tools/demo_seg_synthetic.py (see --help).
set -euo pipefail
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/launcher.sh"  # also through a symlink
bash "$COAT_ROOT/tools/setup_env.sh"
# OpenMP threads that spin while they wait stall each other when other processes share the cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$COAT_VENV/bin/python" "$COAT_ROOT/tools/demo_seg_synthetic.py" "$@"
