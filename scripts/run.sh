#!/usr/bin/env bash
# Runs the whole kit: a hub with embedded storage, the simulated site and an edge
# agent (`ems demo`; arguments are passed on). The first run installs what the
# demo needs into .venv (the project with its edge, sim and hub extras: no root,
# no browser, no test tools); later runs start without a network. Ctrl-C stops
# all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh edge,sim,hub
exec "${EMS_VENV:-.venv}/bin/ems" demo "$@"
