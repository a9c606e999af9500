#!/usr/bin/env bash
# Train with NUM_PROCESSES processes per machine through torchrun (torch.distributed.run): one per
# GPU, or gloo processes on CPU when there is no GPU.
#   tools/dist_train.sh CONFIG NUM_PROCESSES [tools/train.py options]
# Several machines: NNODES, NODE_RANK, MASTER_ADDR and PORT (default 29500) on each of them.
# COAT_VENV selects the environment (tools/launcher.sh).
set -euo pipefail
usage="usage: $0 CONFIG NUM_PROCESSES [options of tools/train.py]"
if [ $# -lt 2 ]; then
  echo "$usage" >&2
  exit 2
fi
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/launcher.sh"  # also through a symlink
coat_torchrun "$2" train.py "$1" --launcher pytorch "${@:3}"
