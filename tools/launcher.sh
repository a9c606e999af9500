# Sourced by the scripts in tools/: where the checkout and the project's environment are, and how
# the launchers start a tool.
#   COAT_ROOT         the checkout.
#   COAT_STACK        which tested stack: current (default: constraints.txt, .venv) or torch2.1
#                     (constraints-torch2.1.txt, .venv-torch2.1: torch 2.1 and numpy 1.x, as with
#                     OpenMMLab's prebuilt mmcv).
#   COAT_CONSTRAINTS  the stack's pins.
#   COAT_VENV         the environment tools/setup_env.sh makes (default: the stack's). A relative
#                     path is taken from the current folder, alike in every script; exported
#                     absolute.
COAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case ${COAT_STACK:=current} in
  current) coat_stack_suffix= ;;
  torch2.1) coat_stack_suffix=-torch2.1 ;;
  *) echo "COAT_STACK=$COAT_STACK is no stack of this project: use current (the default) or" \
       "torch2.1" >&2
     exit 2 ;;
esac
export COAT_STACK
COAT_CONSTRAINTS=$COAT_ROOT/constraints$coat_stack_suffix.txt
coat_venv_given=${COAT_VENV:+1}
COAT_VENV=${COAT_VENV:-$COAT_ROOT/.venv$coat_stack_suffix}
case $COAT_VENV in
  /*) ;;
  *) COAT_VENV=$PWD/$COAT_VENV ;;  # as given otherwise, symlinks and all
esac
export COAT_VENV

# The environment's python; without one (your own environment, no set-up) python3 from PATH,
# unless COAT_VENV was given, which must then hold one.
coat_python() {
  local name
  for name in python python3; do
    if [ -x "$COAT_VENV/bin/$name" ]; then
      echo "$COAT_VENV/bin/$name"
      return
    fi
  done
  if [ -n "$coat_venv_given" ]; then
    echo "COAT_VENV=$COAT_VENV has no bin/python: name an environment (a venv or a conda" \
      "prefix), or make one there with COAT_VENV=$COAT_VENV bash $COAT_ROOT/tools/setup_env.sh" >&2
    return 1
  elif command -v python3 >/dev/null; then
    echo python3
  else
    echo "no $COAT_VENV and no python3 on PATH: run bash $COAT_ROOT/tools/setup_env.sh" >&2
    return 1
  fi
}

# coat_torchrun NUM_PROCESSES TOOL [ARGS]: TOOL (train.py, test.py) on this machine's share of the
# processes, with the rendezvous from NNODES, NODE_RANK, MASTER_ADDR and PORT. The caller's $usage
# is shown for a count that is not one.
coat_torchrun() {
  local nproc=$1 tool=$2 python
  shift 2
  if ! [[ $nproc =~ ^([1-9][0-9]*|auto|cpu|gpu)$ ]]; then
    echo "NUM_PROCESSES '$nproc' is not a number of processes (or torchrun's auto, cpu, gpu)." >&2
    echo "$usage" >&2
    exit 2
  fi
  python=$(coat_python)
  exec "$python" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$nproc" "$COAT_ROOT/tools/$tool" "$@"
}

# coat_srun PARTITION JOB_NAME TOOL [ARGS]: TOOL on GPUS tasks (default 8), GPUS_PER_NODE a node
# (default: GPUS, at most 8), CPUS_PER_TASK cores each (default 5); SRUN_ARGS are more srun options,
# split at spaces (as in mmdet's scripts: a value cannot hold a space).
coat_srun() {
  local partition=$1 job_name=$2 tool=$3 python gpus per_node
  shift 3
  gpus=${GPUS:-8}
  per_node=${GPUS_PER_NODE:-$(( gpus < 8 ? gpus : 8 ))}
  python=$(coat_python)
  # shellcheck disable=SC2086  # SRUN_ARGS holds several options
  exec srun -p "$partition" --job-name="$job_name" \
    --gres=gpu:"$per_node" --ntasks="$gpus" --ntasks-per-node="$per_node" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "$python" -u "$COAT_ROOT/tools/$tool" "$@"
}
