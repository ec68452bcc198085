"""The agent the playbook installed, run inside the root as its unit says, streams
readings from the simulator to a hub on this machine, and the hub stores them.

The chroot shares this machine's network, so the hub and the simulator listen
on loopback; the config the role rendered already points at both. systemd is
not running in a chroot, so this test does what the unit asks of systemd: it
reads ExecStart=, User=, LoadCredential=, StateDirectory= and WatchdogSec= from
the installed unit, prepares the credential and the state directory, listens on
a notify socket, and starts the command as the agent's user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.ansible import (
    DEVICE_ID,
    Converged,
    PlayResult,
    group,
    group_members,
    passwd,
    require_root_and_debootstrap,
)

pytestmark = [pytest.mark.slow, pytest.mark.needs_root, pytest.mark.timeout(1800)]

EMS = str(Path(sys.executable).parent / "ems")
UNIT = "etc/systemd/system/ems-edge.service"


@pytest.fixture(scope="module", autouse=True)
def _root_and_debootstrap() -> None:
    require_root_and_debootstrap()


def _service_section(unit: str) -> dict[str, str]:
    section: dict[str, str] = {}
    current = ""
    for line in unit.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            section.setdefault(key, value)
    return section


def _wait_for_port(port: int, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited {process.returncode}: {process.communicate()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not listen on port {port} within 60 s")


@contextlib.contextmanager
def _started(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[str]]:
    with log.open("w") as out:
        process = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@dataclass(frozen=True)
class Streamed:
    """One run of the installed agent against a hub and a simulator on this machine."""

    token: str
    rolled: PlayResult
    readings: list[dict[str, Any]]
    messages: set[str]
    exit_code: int | None
    stop_s: float
    timeout_stop_s: float
    log: str
    root: Path


@pytest.fixture(scope="module")
def streamed(converged: Converged, tmp_path_factory: pytest.TempPathFactory) -> Streamed:
    site, root = converged.site, converged.site.root
    work = tmp_path_factory.mktemp("streams")
    env = {**os.environ, "EMS_DATA_DIR": str(work / "hub-data")}

    # The installer's way to a token: `ems hub token add DEVICE_ID`, last line.
    added = subprocess.run(
        [EMS, "hub", "token", "add", DEVICE_ID],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if added.returncode != 0:
        pytest.fail(f"ems hub token add exited {added.returncode}: {added.stderr}")
    token = added.stdout.strip().splitlines()[-1]

    # The new token goes into the vault; the role writes it and restarts the agent.
    rolled = site.play(token=token)
    if rolled.returncode != 0:
        pytest.fail(f"the run with the hub's token failed:\n{rolled.output}")

    service = _service_section((root / UNIT).read_text())
    hub_cmd = [EMS, "hub", "serve", "--host", "127.0.0.1", "--port", str(converged.hub_port)]
    sim_cmd = [EMS, "sim", "--tcp", f"127.0.0.1:{converged.sim_port}", "--seed", "7"]
    log_path = work / "agent.log"
    with (
        _started(hub_cmd, env, work / "hub.log") as hub,
        _started(sim_cmd, env, work / "sim.log") as sim,
    ):
        _wait_for_port(converged.hub_port, hub, "ems hub serve")
        _wait_for_port(converged.sim_port, sim, "ems sim")
        agent, notify = _start_as_the_unit_says(root, service, log_path)
        try:
            readings = _wait_for_readings(converged.hub_port, agent, log_path)
            messages = _notifications(notify, want={"READY=1", "WATCHDOG=1"})
        finally:
            # `systemctl stop`: SIGTERM, then SIGKILL after TimeoutStopSec=.
            timeout_stop_s = float(service["TimeoutStopSec"])
            began = time.monotonic()
            agent.send_signal(signal.SIGTERM)
            try:
                code: int | None = agent.wait(timeout=timeout_stop_s)
            except subprocess.TimeoutExpired:
                # Where it hangs: faulthandler dumps every thread's stack on SIGABRT.
                agent.send_signal(signal.SIGABRT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    agent.wait(timeout=5)
                if agent.poll() is None:
                    agent.kill()
                    agent.wait()
                code = None
            stop_s = time.monotonic() - began
            notify.close()
    return Streamed(
        token=token,
        rolled=rolled,
        readings=readings,
        messages=messages,
        exit_code=code,
        stop_s=stop_s,
        timeout_stop_s=timeout_stop_s,
        log=log_path.read_text(),
        root=root,
    )


def test_new_token_from_the_hub_restarts_the_agent(streamed: Streamed) -> None:
    assert streamed.rolled.restart_notified, streamed.rolled.output
    assert streamed.token not in streamed.rolled.output
    assert (streamed.root / "etc/credstore/ems-edge.token").read_text() == streamed.token


def test_installed_agent_streams_simulated_readings_to_the_hub(streamed: Streamed) -> None:
    readings = streamed.readings
    assert len(readings) >= 3, streamed.log
    for reading in readings:
        assert {"seq", "ts"} <= reading.keys()
    assert any(reading.get("grid") for reading in readings), readings[-1]
    assert streamed.token not in streamed.log
    # The outbox lives in the state directory, owned by the agent's user.
    outbox = streamed.root / "var/lib/ems-edge/buffer.db"
    assert outbox.exists()
    assert outbox.stat().st_uid == passwd(streamed.root)["ems-edge"]["uid"]


def test_installed_agent_tells_systemd_it_is_ready_and_alive(streamed: Streamed) -> None:
    assert "READY=1" in streamed.messages, streamed.log
    assert "WATCHDOG=1" in streamed.messages, streamed.log


def test_installed_agent_stops_cleanly_within_the_units_stop_timeout(streamed: Streamed) -> None:
    """docs/architecture.md, "Guarantees": exits 0 within seconds; systemd would SIGKILL
    the agent after TimeoutStopSec=."""
    assert streamed.exit_code == 0, (
        f"exit {streamed.exit_code} after {streamed.stop_s:.1f} s "
        f"(TimeoutStopSec={streamed.timeout_stop_s:g}):\n{streamed.log}"
    )
    assert streamed.stop_s < streamed.timeout_stop_s


def _start_as_the_unit_says(
    root: Path, service: dict[str, str], log: Path
) -> tuple[subprocess.Popen[str], socket.socket]:
    user = passwd(root)[service["User"]]
    gids = [user["gid"]] + [
        group(root)[name]
        for name, members in group_members(root).items()
        if service["User"] in members
    ]

    # StateDirectory=: /var/lib/<name>, owned by the service's user.
    state = root / "var/lib" / service["StateDirectory"]
    state.mkdir(parents=True, exist_ok=True)
    os.chown(state, user["uid"], user["gid"])
    state.chmod(int(service.get("StateDirectoryMode", "0755"), 8))

    # LoadCredential=token:PATH: a private copy, readable by the service's user only.
    name, _, source = service["LoadCredential"].partition(":")
    credentials = root / "run/credentials/ems-edge.service"
    credentials.mkdir(parents=True, exist_ok=True)
    (credentials / name).write_bytes((root / source.lstrip("/")).read_bytes())
    for path, mode in ((credentials / name, 0o400), (credentials, 0o500)):
        os.chown(path, user["uid"], user["gid"])
        path.chmod(mode)

    # Type=notify: the agent reports READY=1, then WATCHDOG=1, on $NOTIFY_SOCKET.
    notify_dir = root / "run/ems-test"
    notify_dir.mkdir(parents=True, exist_ok=True)
    notify_path = notify_dir / "notify"
    notify_path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify_path.chmod(0o666)

    watchdog_usec = int(service["WatchdogSec"]) * 1_000_000
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": user["home"],
        "USER": service["User"],
        "LOGNAME": service["User"],
        "NOTIFY_SOCKET": "/run/ems-test/notify",
        "WATCHDOG_USEC": str(watchdog_usec),
        "CREDENTIALS_DIRECTORY": "/run/credentials/ems-edge.service",
        "STATE_DIRECTORY": f"/var/lib/{service['StateDirectory']}",
        # Not from the unit: a stack dump of every thread if the test has to SIGABRT it.
        "PYTHONFAULTHANDLER": "1",
    }
    cmd = [
        shutil.which("chroot") or "/usr/sbin/chroot",  # the agent's PATH is the root's
        f"--userspec={user['uid']}:{user['gid']}",
        f"--groups={','.join(str(gid) for gid in gids)}",
        str(root),
        *shlex.split(service["ExecStart"]),
    ]
    out = log.open("w")
    agent = subprocess.Popen(cmd, env=environment, stdout=out, stderr=subprocess.STDOUT, text=True)
    out.close()
    return agent, notify


def _wait_for_readings(
    hub_port: int, agent: subprocess.Popen[str], log: Path
) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{hub_port}/api/devices/{DEVICE_ID}/readings?limit=100"
    deadline = time.monotonic() + 120
    readings: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            pytest.fail(f"the agent exited {agent.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            readings = _get(url)["readings"]
            if len(readings) >= 3:
                return readings
        time.sleep(1)
    pytest.fail(f"{len(readings)} reading(s) stored after 120 s:\n{log.read_text()}")


def _notifications(notify: socket.socket, want: set[str]) -> set[str]:
    """What the agent told "systemd", waiting until ``want`` has been seen (or 60 s)."""
    seen: set[str] = set()
    notify.settimeout(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not want <= seen:
        with contextlib.suppress(TimeoutError):
            seen.update(notify.recv(4096).decode().split("\n"))
    return seen
