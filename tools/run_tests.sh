#!/usr/bin/env bash
# The README's test command: set up the environment (idempotent), then run the test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh tests/test_coat.py -k timm`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"  # before set-up, so that a relative COAT_VENV means the same folder to both
bash tools/setup_env.sh
# Some tests run two training processes on the same cores: spinning OpenMP threads stall them.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "${COAT_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
