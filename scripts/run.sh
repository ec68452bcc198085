#!/usr/bin/env bash
# Installs what is missing, then runs the kit (for now the hub with embedded storage;
# `ems demo` once the edge agent lands).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ems hub serve "$@"
