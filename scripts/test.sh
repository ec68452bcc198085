#!/usr/bin/env bash
# Installs the test tools when missing (scripts/setup.sh), then runs the whole
# test suite: ruff, mypy, pytest.
# No test may be skipped here: a skip fails the run (EMS_NO_SKIP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
EMS_NO_SKIP=1 .venv/bin/pytest "$@"
