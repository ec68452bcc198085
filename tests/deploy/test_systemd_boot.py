"""deploy/systemd/ems-hub.service run by a real systemd: a Debian bookworm root (the one
the Ansible tests build) booted with systemd-nspawn, the hub installed from a wheel of
this repository as docs/operations.md says, and the shipped unit and environment file
in place. From outside: the hub serves under every protection of the unit, the
documented token, restart and backup commands work, and a device streams through a
restart losing nothing.

The container shares this machine's network (nspawn's default), so the test reaches the
hub on its port; commands inside run through nsenter(1) into the container's namespaces.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.ansible import bookworm_tarball, build_wheel, mounts_under, run
from tests.support.hub import BASE_TS, reading, recv_ack_seqs
from tests.support.ports import free_port
from tests.support.redis import redis_server

pytestmark = [pytest.mark.slow, pytest.mark.needs_root, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
NSPAWN = "systemd-nspawn"
DEVICE = "ems_unit"


@dataclass
class Booted:
    root: Path
    leader: int  # the container's systemd, as this machine's process id
    port: int

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command inside the running container, as root."""
        done = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", *command],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
        if check:
            assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        return done

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.http}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def journal(self) -> str:
        return self.run("journalctl", "-u", "ems-hub", "--no-pager", check=False).stdout


def _until(condition: Callable[[], bool], within: float, what: Callable[[], str]) -> None:
    """Until ``condition``; else fail with ``what()`` (a log, read when it failed)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(what(), pytrace=False)
        time.sleep(0.2)


def _in_chroot(root: Path, script: str) -> None:
    run(
        ["chroot", str(root), "/bin/sh", "-ec", script],
        timeout=600,
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "DEBIAN_FRONTEND": "noninteractive",
            "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        },
    )


def _installed(root: Path, wheel: Path, port: int) -> None:
    """The hub installed in ``root`` as docs/operations.md says, enabled, not started."""
    # pip and apt inside reach the package registries as this machine does.
    bundle = "etc/ssl/certs/ca-certificates.crt"
    shutil.copyfile(f"/{bundle}", root / bundle)
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    shutil.copyfile(wheel, root / "opt" / wheel.name)
    run(["mount", "-t", "proc", "proc", str(root / "proc")])
    try:
        run(["mount", "--bind", "/dev", str(root / "dev")])
        _in_chroot(
            root,
            # D-Bus, as on a standard install: systemd-run (the token command) needs it.
            "apt-get install -y -qq --no-install-recommends dbus >/dev/null\n"
            "python3 -m venv /opt/ems-hub/venv\n"
            f"/opt/ems-hub/venv/bin/pip install -q '/opt/{wheel.name}[hub]'\n"
            "useradd --system --home-dir /var/lib/ems-hub --shell /usr/sbin/nologin ems-hub\n"
            "install -d -m 0750 -o root -g ems-hub /etc/ems-hub\n",
        )
    finally:
        for point in sorted(mounts_under(root), key=len, reverse=True):
            subprocess.run(["umount", point], check=False)
    env_file = root / "etc/ems-hub/hub.env"
    env_file.write_text(
        (REPO / "deploy/systemd/ems-hub.env")
        .read_text()
        .replace("\nEMS_PORT=8000\n", f"\nEMS_PORT={port}\n")
    )
    _in_chroot(
        root,
        "chown root:ems-hub /etc/ems-hub/hub.env && chmod 0640 /etc/ems-hub/hub.env",
    )
    unit = root / "etc/systemd/system/ems-hub.service"
    shutil.copyfile(REPO / "deploy/systemd/ems-hub.service", unit)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(exist_ok=True)
    (wants / "ems-hub.service").symlink_to("/etc/systemd/system/ems-hub.service")


def _leader(nspawn: subprocess.Popen[bytes]) -> int:
    """The container's init: the process named systemd among nspawn's descendants."""
    pending = [nspawn.pid]
    while pending:
        pid = pending.pop()
        children = Path(f"/proc/{pid}/task/{pid}/children")
        for child in children.read_text().split() if children.exists() else []:
            if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                return int(child)
            pending.append(int(child))
    raise LookupError("no systemd under nspawn yet")


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    assert shutil.which(NSPAWN), "systemd-nspawn is missing: run scripts/setup.sh"
    directory = tmp_path_factory.mktemp("booted")
    root = directory / "root"
    root.mkdir()
    run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(bookworm_tarball())])
    port = free_port()
    _installed(root, build_wheel(directory), port)
    log = directory / "console.log"
    with log.open("wb") as console:
        nspawn = subprocess.Popen(
            # No host systemd here: nothing to register with, no unit to move into.
            [
                *(NSPAWN, "--quiet", "--register=no", "--keep-unit", "--console=passive"),
                *("-D", str(root), "--boot"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
        )
    leader: int | None = None
    try:
        deadline = time.monotonic() + 60
        while leader is None:
            assert nspawn.poll() is None, log.read_text(errors="replace")
            try:
                leader = _leader(nspawn)
            except LookupError:
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.2)
        booted = Booted(root, leader, port)
        _until(booted.healthy, 120, lambda: log.read_text(errors="replace"))
        yield booted
    finally:
        if nspawn.poll() is None and leader is not None:
            poweroff = ["nsenter", "-t", str(leader), "-a", "systemctl", "poweroff"]
            subprocess.run(poweroff, check=False)
        try:
            nspawn.wait(60)
        except subprocess.TimeoutExpired:
            nspawn.kill()
            nspawn.wait()
        if not mounts_under(root):
            shutil.rmtree(directory, ignore_errors=True)


def _status(booted: Booted, pid: int) -> dict[str, str]:
    text = booted.run("cat", f"/proc/{pid}/status").stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _main_pid(booted: Booted) -> int:
    return int(booted.run("systemctl", "show", "-p", "MainPID", "--value", "ems-hub").stdout)


def test_the_hub_runs_under_the_units_protections(booted: Booted) -> None:
    assert booted.run("systemctl", "is-active", "ems-hub").stdout.strip() == "active"
    status = _status(booted, _main_pid(booted))
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # a filter is installed
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapBnd"], 16) == 0
    owner = booted.run("stat", "-c", "%U %a", "/var/lib/ems-hub/hub.db").stdout.split()
    assert owner == ["ems-hub", "600"]
    journal = booted.journal()
    assert "storage: SQLite file /var/lib/ems-hub/hub.db" in journal, journal
    assert "cannot raise" not in journal
    assert "Traceback" not in journal
    # The running unit's score, as the operator measures it (docs/operations.md).
    scored = booted.run("systemd-analyze", "security", "ems-hub.service").stdout
    match = re.search(r"Overall exposure level for ems-hub\.service: (\d+\.\d+)", scored)
    assert match is not None, scored
    assert float(match.group(1)) <= 1.1, scored


async def test_a_device_streams_through_a_restart_with_a_documented_token(
    booted: Booted,
) -> None:
    added = booted.run(
        *("systemd-run", "--uid=ems-hub", "--pipe", "--wait", "--quiet"),
        *("-p", "EnvironmentFile=/etc/ems-hub/hub.env", "-E", "EMS_DATA_DIR=/var/lib/ems-hub"),
        *("/opt/ems-hub/venv/bin/ems", "hub", "token", "add", DEVICE),
    )
    token = added.stdout.strip().splitlines()[-1]
    assert "ems: storage: SQLite file /var/lib/ems-hub/hub.db" in added.stderr
    url = f"ws://127.0.0.1:{booted.port}/ws/device/{DEVICE}"
    headers = {"Authorization": f"Bearer {token}"}
    async with asyncio.timeout(60):
        while True:  # the running hub picks the new token up within about a second
            try:
                device = await connect(url, additional_headers=headers)
                break
            except InvalidStatus:  # 403 until the hub's token book holds it
                await asyncio.sleep(0.2)
    async with device:
        for seq in range(20):
            await device.send(json.dumps(reading(seq)))
        assert await recv_ack_seqs(device, set(range(20))) == set(range(20))
        restarted = asyncio.create_task(
            asyncio.to_thread(booted.run, "systemctl", "restart", "ems-hub")
        )
        await device.wait_closed()
        assert device.close_code == 1001  # going away: the unit's SIGTERM
        await restarted
    await asyncio.to_thread(_until, booted.healthy, 60, booted.journal)
    async with connect(url, additional_headers=headers) as device:
        for seq in range(20, 40):
            await device.send(json.dumps(reading(seq)))
        assert await recv_ack_seqs(device, set(range(20, 40))) == set(range(20, 40))
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"{booted.http}/api/devices/{DEVICE}/readings",
            params={
                "start": (BASE_TS - timedelta(minutes=1)).isoformat(),
                "end": (BASE_TS + timedelta(hours=1)).isoformat(),
            },
        )
    assert answer.status_code == 200, answer.text
    assert [row["seq"] for row in answer.json()["readings"]] == list(range(40))
    assert "Traceback" not in booted.journal()


def test_the_documented_backup_runs_as_the_service_user(booted: Booted) -> None:
    booted.run("install", "-d", "-o", "ems-hub", "-g", "ems-hub", "/var/backups/ems-hub")
    operations = (REPO / "docs/operations.md").read_text()
    one_liner = re.search(r"python3 -c '([^']+)'", operations)
    assert one_liner is not None
    booted.run(
        *("runuser", "-u", "ems-hub", "--", "python3", "-c", one_liner.group(1)),
        *("/var/lib/ems-hub/hub.db", "/var/backups/ems-hub/hub.db"),
    )
    checked = booted.run(
        *("runuser", "-u", "ems-hub", "--", "python3", "-c"),
        "import sqlite3; c = sqlite3.connect('/var/backups/ems-hub/hub.db'); "
        "print(c.execute('PRAGMA integrity_check').fetchone()[0], "
        "c.execute('SELECT count(*) FROM device_tokens').fetchone()[0])",
    )
    integrity, tokens = checked.stdout.split()
    assert integrity == "ok", checked.stdout
    assert int(tokens) >= 0  # the tables came along
    assert booted.run("systemctl", "is-active", "ems-hub").stdout.strip() == "active"


def _settings(booted: Booted, **changes: str) -> None:
    """Edit /etc/ems-hub/hub.env as an operator does: each VARIABLE=value replaced or added."""
    path = booted.root / "etc/ems-hub/hub.env"
    lines = path.read_text().splitlines()
    for name, value in changes.items():
        lines = [line for line in lines if not line.startswith(f"{name}=")]
        lines.append(f"{name}={value}")
    path.write_text("\n".join(lines) + "\n")


def _show(booted: Booted, prop: str) -> str:
    return booted.run("systemctl", "show", "-p", prop, "--value", "ems-hub").stdout.strip()


def test_a_config_error_stops_the_unit_without_a_restart_loop(booted: Booted) -> None:
    """Exit 2 (a bad setting) is not retried: the unit fails once, with the reason."""
    _settings(booted, EMS_TRUSTED_PROXIES="proxy.example")
    try:
        booted.run("systemctl", "restart", "ems-hub", check=False)
        _until(lambda: _show(booted, "ActiveState") == "failed", 60, booted.journal)
        time.sleep(3)  # past RestartSec=: no restart came
        assert _show(booted, "ActiveState") == "failed"
        assert _show(booted, "NRestarts") == "0"
        assert _show(booted, "ExecMainStatus") == "2"
        assert "ems: $EMS_TRUSTED_PROXIES: 'proxy.example'" in booted.journal()
    finally:
        _settings(booted, EMS_TRUSTED_PROXIES="127.0.0.1,::1")
    booted.run("systemctl", "restart", "ems-hub")
    _until(booted.healthy, 120, booted.journal)


def test_workers_of_a_cluster_run_under_the_unit(
    booted: Booted, postgres_url: str, tmp_path: Path
) -> None:
    """`--workers 2` from one unit (docs/operations.md): the supervisor and its workers
    under the same protections, on PostgreSQL and a Redis on this machine. Runs last:
    it changes the unit with a drop-in."""
    with redis_server(tmp_path) as redis:
        _settings(booted, EMS_DATABASE_URL=postgres_url, EMS_CLUSTER_URL=redis.url)
        dropin = booted.root / "etc/systemd/system/ems-hub.service.d"
        dropin.mkdir(exist_ok=True)
        (dropin / "workers.conf").write_text(
            "[Service]\n"
            "ExecStart=\n"
            "ExecStart=/opt/ems-hub/venv/bin/ems hub serve --host ${EMS_HOST} --port ${EMS_PORT}"
            " --workers 2\n"
        )
        booted.run("systemctl", "daemon-reload")
        booted.run("systemctl", "restart", "ems-hub")
        _until(booted.healthy, 120, booted.journal)
        main = _main_pid(booted)
        # The unit's processes, by their command line (the root has no procps).
        listed = booted.run(
            *("python3", "-c"),
            "import os\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try: argv = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
            "    except OSError: continue\n"
            "    if b'hub' in argv and b'serve' in argv: print(pid)\n",
        )
        pids = listed.stdout.split()
        assert len(pids) == 3, pids  # the supervisor and two workers
        for pid in pids:
            status = _status(booted, int(pid))
            assert status["Seccomp"].strip() == "2"
            assert int(status["CapEff"], 16) == 0
        ready = httpx.get(f"{booted.http}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        booted.run("systemctl", "stop", "ems-hub")
        result = booted.run("systemctl", "show", "-p", "Result", "--value", "ems-hub").stdout
        assert result.strip() == "success", booted.journal()
        assert main > 0
        journal = booted.journal()
        assert "Traceback" not in journal, journal
