#!/usr/bin/env bash
# Test with NUM_PROCESSES processes per machine through torchrun (torch.distributed.run).
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py options]
# Several machines: NNODES, NODE_RANK, MASTER_ADDR and PORT (default 29500) on each of them.
# COAT_VENV selects the environment (tools/launcher.sh).
set -euo pipefail
usage="usage: $0 CONFIG CHECKPOINT NUM_PROCESSES [options of tools/test.py]"
if [ $# -lt 3 ]; then
  echo "$usage" >&2
  exit 2
fi
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/launcher.sh"  # also through a symlink
coat_torchrun "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
