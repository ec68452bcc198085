#!/usr/bin/env bash
# Installs everything the test suite needs on a Debian machine: Debian packages
# (browser, debootstrap, nginx, socat, sqlite3, pg_dump, systemd, systemd-container,
# mosquitto) when
# missing, which takes root, then the
# project with its dev extra in .venv (scripts/install.sh: pip only when
# pyproject.toml changed). Safe to run again. The demo alone needs none of the
# Debian packages: scripts/run.sh installs only what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v socat >/dev/null || need_apt+=(socat)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
# tests/deploy/test_nginx.py runs the shipped deploy/nginx/ems-hub.conf in it.
[ -x /usr/sbin/nginx ] || need_apt+=(nginx)
# tests/deploy/test_backup.py backs up as docs/operations.md says: sqlite3, pg_dump.
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v pg_dump >/dev/null || need_apt+=(postgresql-client)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
# tests/deploy/test_systemd_boot.py boots a Debian root to run the hub's unit.
command -v systemd-nspawn >/dev/null || need_apt+=(systemd-container)
# The MQTT tests start a private broker of their own (tests/support/mqtt.py);
# bench/edge_mqtt_resources.py counts messages with mosquitto_sub.
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || need_apt+=(mosquitto)
command -v mosquitto_sub >/dev/null || need_apt+=(mosquitto-clients)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: the tests need these Debian packages; install them as root: ${need_apt[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

bash scripts/install.sh dev
