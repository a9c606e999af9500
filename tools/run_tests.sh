#!/usr/bin/env bash
# The README's test command: set up the environment (idempotent), then run the test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh tests/test_coat.py -k timm`; they
# are read from the checkout, where pytest.ini is.
set -euo pipefail
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/launcher.sh"  # also through a symlink
bash "$COAT_ROOT/tools/setup_env.sh"
cd "$COAT_ROOT"
# Some tests run two training processes on the same cores: spinning OpenMP threads stall them.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$COAT_VENV/bin/python" -m pytest "$@"
