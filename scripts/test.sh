#!/usr/bin/env bash
# Installs the test tools when missing (scripts/setup.sh) and TimescaleDB
# (scripts/timescaledb.sh), then runs the whole test suite: ruff, mypy, pytest.
# No test may be skipped here: a skip fails the run (EMS_NO_SKIP=1), and a missing
# TimescaleDB fails it too.
# The run ends with the line coverage of our packages ([tool.coverage.run] in
# pyproject.toml); it is printed, not a gate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
tool="$(bash scripts/timescaledb.sh)"
if [ -n "$tool" ]; then
    export EMS_TIMESCALEDB_TOOL="$tool"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
EMS_NO_SKIP=1 .venv/bin/pytest --cov --cov-report=term "$@"
