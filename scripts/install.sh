#!/usr/bin/env bash
# Usage: scripts/install.sh EXTRAS   (e.g. "edge,sim,hub" for the demo, "dev" for the tests)
#
# Makes .venv hold the project with those extras, calling pip only when needed:
# a stamp in .venv records the hash of pyproject.toml and the extras installed,
# so once installed nothing here touches the network. The project is installed
# editable: changes to the code need no reinstall, a change to pyproject.toml
# (a dependency, the version) does. "dev" includes edge, sim and hub, so a test
# install also serves the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="$1"
venv="${EMS_VENV:-.venv}"
stamp="$venv/.ems-install-stamp"
hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"

installed() {  # the stamp matches pyproject.toml and covers the extras asked for
    [ -x "$venv/bin/ems" ] && [ -f "$stamp" ] || return 1
    local stamped_hash stamped_extras
    read -r stamped_hash stamped_extras <"$stamp" || return 1
    [ "$stamped_hash" = "$hash" ] || return 1
    [ "$stamped_extras" = "$extras" ] || [ "$stamped_extras" = dev ]
}

if installed; then
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "install: creating the virtualenv $venv" >&2
    python3 -m venv "$venv" || {
        echo "install: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
echo "install: installing the project with its $extras extras into $venv (pip)" >&2
"$venv/bin/python" -m pip install -q -e ".[$extras]"
printf '%s %s\n' "$hash" "$extras" >"$stamp"
