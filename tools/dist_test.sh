#!/usr/bin/env bash
# Test with NUM_PROCESSES processes per machine through torchrun (torch.distributed.run).
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py options]
# Several machines: NNODES, NODE_RANK, MASTER_ADDR and PORT (default 29500) on each of them.
# PYTHON selects the interpreter (default: the project's .venv when set up, else python).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT NUM_PROCESSES [options of tools/test.py]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV_PYTHON="${COAT_VENV:-$TOOLS/../.venv}/bin/python"
[ -x "$VENV_PYTHON" ] || VENV_PYTHON=python
exec "${PYTHON:-$VENV_PYTHON}" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" \
  "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
