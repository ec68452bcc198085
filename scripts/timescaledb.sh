#!/usr/bin/env bash
# Makes TimescaleDB ready for the test suite (tests/support/timescaledb.py), or says
# why it cannot:
#   - EMS_TEST_TIMESCALEDB_URL set: the tests use that server; nothing to do here.
#   - else the provisioning tool: EMS_TIMESCALEDB_TOOL, or the first
#     shared/tools/timescaledb in a folder above the checkout. As root, its `install`
#     builds TimescaleDB into the machine's PostgreSQL 15 once (~2 min; later runs
#     return at once); the tests then start a throw-away cluster with it.
# Prints the tool's path on stdout for the caller to export; exits 1 when there is
# neither, because the TimescaleDB tests would fail (they are never skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${EMS_TEST_TIMESCALEDB_URL:-}" ]; then
    exit 0
fi
tool="${EMS_TIMESCALEDB_TOOL:-}"
if [ -z "$tool" ]; then
    folder="$(pwd -P)"
    while [ "$folder" != / ]; do
        folder="$(dirname "$folder")"
        if [ -f "$folder/shared/tools/timescaledb" ]; then
            tool="$folder/shared/tools/timescaledb"
            break
        fi
    done
fi
if [ -z "$tool" ] || [ ! -f "$tool" ]; then
    echo "timescaledb: no TimescaleDB for the tests: set EMS_TEST_TIMESCALEDB_URL to a" \
        "server that preloads it, or EMS_TIMESCALEDB_TOOL to the provisioning tool" \
        "(${tool:-none found as shared/tools/timescaledb above $(pwd -P)})" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ]; then
    bash "$tool" install >&2
fi
echo "$tool"
