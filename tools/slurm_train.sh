#!/usr/bin/env bash
# Train on a Slurm cluster: one task per GPU, launched by srun.
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options]
# Environment: GPUS (total, default 8), GPUS_PER_NODE (default: GPUS, at most 8),
# CPUS_PER_TASK (default 5), SRUN_ARGS (more srun options, split at spaces), COAT_VENV (the
# environment; tools/launcher.sh).
set -euo pipefail
usage="usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [options of tools/train.py]"
if [ $# -lt 4 ] || [[ $4 == -* ]]; then
  # mmseg's slurm_train.sh has no WORK_DIR: its users' first option would take its place.
  [ $# -lt 4 ] || echo "WORK_DIR '$4' is an option: give the work dir before the options." >&2
  echo "$usage" >&2
  exit 2
fi
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/launcher.sh"  # also through a symlink
coat_srun "$1" "$2" train.py "$3" --work-dir="$4" --launcher=slurm "${@:5}"
