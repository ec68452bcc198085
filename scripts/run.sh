#!/usr/bin/env bash
# Installs what is missing, then runs the whole kit: a hub with embedded storage,
# the simulated site and an edge agent (`ems demo`). Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ems demo "$@"
