#!/usr/bin/env bash
# Test on a Slurm cluster: one task per GPU, launched by srun.
#   tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py options]
# Environment: GPUS (total, default 8), GPUS_PER_NODE (default: GPUS, at most 8),
# CPUS_PER_TASK (default 5), SRUN_ARGS (more srun options, split at spaces), COAT_VENV (the
# environment; tools/launcher.sh).
set -euo pipefail
usage="usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [options of tools/test.py]"
if [ $# -lt 4 ] || [[ $4 == -* ]]; then
  [ $# -lt 4 ] || echo "CHECKPOINT '$4' is an option: give the checkpoint before the options." >&2
  echo "$usage" >&2
  exit 2
fi
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/launcher.sh"  # also through a symlink
coat_srun "$1" "$2" test.py "$3" "$4" --launcher=slurm "${@:5}"
