#!/usr/bin/env bash
# Creates or updates the project's environment (.venv): the stack pinned in constraints.txt, mmcv
# built from source against the installed torch, and this package in editable mode with its test
# extras. COAT_STACK=torch2.1 makes the other tested stack instead (constraints-torch2.1.txt in
# .venv-torch2.1: torch 2.1 and numpy 1.x, as users of OpenMMLab's prebuilt mmcv have).
# Idempotent: with unchanged pins a second run returns in seconds, and a rebuilt environment reuses
# the mmcv wheel cached for the exact torch build it was compiled against.
#
# Environment: COAT_VENV (default <checkout>/.venv), COAT_BASE_PYTHON (the Python, 3.11 or newer,
# a new venv is made from; default python3.11, else python3), COAT_CACHE_DIR (default
# ~/.cache/coat-backbone), FORCE_CUDA=1 and TORCH_CUDA_ARCH_LIST to build mmcv's CUDA ops (needs
# nvcc; automatic with a GPU), CUDA_VISIBLE_DEVICES= for a CPU-only set-up on a GPU machine.
# Set-ups sharing a cache run in turn.
set -euo pipefail

. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/launcher.sh"  # also through a symlink
CACHE="${COAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/coat-backbone}"
PY="$COAT_VENV/bin/python"
CONSTRAINTS=$COAT_CONSTRAINTS

log() { echo "[setup_env] $*" >&2; }
die() { log "error: $*"; exit 1; }
pin() { sed -n "s/^$1==//p" "$CONSTRAINTS"; }

# One set-up at a time: two launchers started together would both build mmcv into one venv.
{ mkdir -p "$CACHE" && exec 9>"$CACHE/setup.lock"; } 2>/dev/null ||
  die "cannot write to $CACHE: set COAT_CACHE_DIR to a writable folder"
if ! command -v flock >/dev/null; then
  log "warning: no flock command (util-linux): set-ups started together are not kept apart"
else
  lock_status=0
  flock -n -E 200 9 || lock_status=$?
  if [ "$lock_status" = 200 ]; then
    log "waiting for another set-up to finish ($CACHE/setup.lock)"
    flock 9
  elif [ "$lock_status" != 0 ]; then
    die "cannot lock $CACHE/setup.lock: set COAT_CACHE_DIR to a local folder"
  fi
fi

setup_key=$(cat "$CONSTRAINTS" "$COAT_ROOT/setup.py" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
# A GPU that appears later (or a copied environment) must rebuild mmcv with its CUDA ops.
# CUDA_VISIBLE_DEVICES= hides the GPUs, for a CPU-only set-up.
gpu=nogpu
if [ -n "${CUDA_VISIBLE_DEVICES-all}" ] && nvidia-smi -L >/dev/null 2>&1; then
  # And their generations: mmcv's ops built for one do not run on another (drivers before R510
  # cannot say).
  caps=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null) || caps=unknown
  gpu="gpu$(sort -u <<<"$caps" | tr -d ' ' | tr '\n' _)"
fi
setup_key="$setup_key-cuda${FORCE_CUDA:-0}-${TORCH_CUDA_ARCH_LIST:-}-$gpu"
stamp="$COAT_VENV/.coat-setup-done"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$setup_key" ]; then
  log "environment up to date ($COAT_VENV)"
  exit 0
fi
# The environment changes from here on: an old stamp must not vouch for a half-updated one.
rm -f "$stamp"

# The pins are resolved for Python 3.11: the current stack needs it or newer (numpy 2.4 for one),
# torch 2.1 has no wheels past it. uv would only say so as an unresolvable pin.
if [ "$COAT_STACK" = torch2.1 ]; then
  py_ok='sys.version_info[:2] == (3, 11)' py_wanted='3.11'
else
  py_ok='sys.version_info >= (3, 11)' py_wanted='3.11 or newer'
fi
python_version() { "$1" -c "import sys; print('%d.%d' % sys.version_info[:2])
sys.exit(not ($py_ok))"; }
if [ ! -x "$PY" ]; then
  base=${COAT_BASE_PYTHON:-$(command -v python3.11 || command -v python3 || true)}
  [ -n "$base" ] || die "no python3 on PATH: install Python 3.11 (Debian/Ubuntu: apt install\
 python3.11-venv) or name it with COAT_BASE_PYTHON=/path/to/python3.11"
  command -v "$base" >/dev/null || die "COAT_BASE_PYTHON=$base: no such interpreter"
  version=$(python_version "$base") || die "$base is Python ${version:-of unknown version}, and\
 the pinned stack needs $py_wanted: install Python 3.11 (Debian/Ubuntu: apt install\
 python3.11-venv) and name it with COAT_BASE_PYTHON=/path/to/python3.11"
  "$base" -m venv "$COAT_VENV"
elif ! version=$(python_version "$PY"); then
  die "$COAT_VENV is Python ${version:-of unknown version}, and the pinned stack needs\
 $py_wanted: move it away and rerun with Python 3.11 (COAT_BASE_PYTHON=/path/to/python3.11)"
fi
# A venv whose creation failed or was interrupted can lack pip; the interpreter's ensurepip repairs it.
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  log "$COAT_VENV has no pip; installing it with ensurepip"
  pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  "$PY" -m ensurepip -q || die "$COAT_VENV has no pip and ensurepip failed: install Python's venv\
 support (Debian/Ubuntu: apt install python$pyver-venv) and rerun"
fi
# uv resolves the regular PyPI torch builds; plain pip on some machines prefers a local '+cpu' wheel
# whose torch breaks torchvision (and so timm). --isolated keeps pip's machine config out as well.
"$PY" -m pip install --isolated -q --disable-pip-version-check "uv==$(pin uv)"
# The constraints pin build dependencies too (setuptools for the editable install's build).
uv_install() {
  UV_LINK_MODE=copy "$COAT_VENV/bin/uv" pip install --python "$PY" -c "$CONSTRAINTS" \
    --build-constraints "$CONSTRAINTS" "$@"
}

log "installing torch $(pin torch) and build tools"
uv_install torch torchvision numpy setuptools wheel ninja

# mmcv has no wheels for current torch: build it once per exact torch build and cache the wheel.
# The probe prints the cache key, then what a build would lack (nothing: an empty line).
mmcv_probe=$("$PY" - "$(pin mmcv)" <<'PYEOF'
import hashlib, os, platform, shlex, shutil, subprocess, sys, sysconfig
import torch
cuda = torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1'
arch = os.getenv('TORCH_CUDA_ARCH_LIST', '')
if not arch and torch.cuda.is_available():
    # Unset, torch's build targets the visible GPUs only: a wheel for sm_90 fails on sm_80.
    arch = ';'.join(sorted({'%d.%d' % torch.cuda.get_device_capability(i)
                            for i in range(torch.cuda.device_count())}))
arch = arch.replace(' ', '_').replace(';', '_')
# What else shapes the binary: the compiler, the C library and the build flags.
cxx = shlex.split(os.getenv('CXX', 'c++'))  # may be a command line, e.g. 'ccache g++'
has_cxx = bool(cxx) and shutil.which(cxx[0]) is not None
version = subprocess.run([*cxx, '--version'], capture_output=True, text=True) if has_cxx else None
compiler = version.stdout.split('\n')[0] if version else 'none'
flags = [os.getenv(name, '')
         for name in ('CC', 'CXX', 'CFLAGS', 'CXXFLAGS', 'LDFLAGS', 'MMCV_CUDA_ARGS')]
build = hashlib.sha256('\n'.join([compiler, *platform.libc_ver(), *flags]).encode()).hexdigest()[:8]
print(f"mmcv{sys.argv[1]}-torch{torch.__version__}-{torch.version.git_version[:12]}"
      f"-cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}"
      f"-{'cuda' if cuda else 'cpu'}{arch}-b{build}")
missing = []
if not has_cxx:
    missing.append('a C++ compiler (Debian/Ubuntu: apt install build-essential)')
if not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')):
    missing.append('the Python headers (Debian/Ubuntu: apt install python%d.%d-dev)'
                   % sys.version_info[:2])
if cuda:
    from torch.utils.cpp_extension import CUDA_HOME  # it warns on a machine without a GPU
    if not os.path.exists(os.path.join(CUDA_HOME or '', 'bin', 'nvcc')):
        missing.append("nvcc for mmcv's CUDA ops (the CUDA toolkit matching torch's CUDA, found "
                       'through CUDA_HOME or PATH), or CUDA_VISIBLE_DEVICES= before the command to '
                       'set up for CPU only')
print('; '.join(missing))
PYEOF
)
{ read -r mmcv_key; read -r build_missing || true; } <<<"$mmcv_probe"
wheel_dir="$CACHE/mmcv-wheels/$mmcv_key"
if ! compgen -G "$wheel_dir/mmcv-*.whl" >/dev/null; then
  # Named up front rather than minutes into the compile.
  [ -z "$build_missing" ] || die "building mmcv needs $build_missing"
  log "building mmcv $(pin mmcv) for $mmcv_key (12-20 minutes on 2 cores, once)"
  tmp_dir=$(mktemp -d)
  trap 'rm -rf "$tmp_dir"' EXIT  # a failed build leaves nothing behind
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" -m pip wheel --isolated -q \
    --disable-pip-version-check --no-build-isolation --no-deps --no-cache-dir \
    -w "$tmp_dir" "mmcv==$(pin mmcv)"
  mkdir -p "$(dirname "$wheel_dir")"
  # Move into place only when complete, so an interrupted build is never mistaken for a cached one.
  # A folder left without its wheel (deleted by hand) would take the new folder inside it.
  rm -rf "$wheel_dir.partial" "$wheel_dir"
  mv "$tmp_dir" "$wheel_dir.partial"
  mv "$wheel_dir.partial" "$wheel_dir"
else
  log "reusing cached mmcv wheel ($mmcv_key)"
fi

log "installing mmcv, the OpenMMLab stack and coat-backbone"
uv_install "$(compgen -G "$wheel_dir/mmcv-*.whl" | head -1)" -e "$COAT_ROOT[all]"
"$PY" -c "import mmcv.ops, mmdet.models, mmseg.models, coat_backbone"  # fails loudly if the stack is broken
echo "$setup_key" > "$stamp"
log "environment ready: $COAT_VENV"
