"""``ems edge run|probe|scan|status`` as processes, with the real hub and Modbus on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.config import load_config
from edge.outbox import read_status
from simulation.default_site import REGISTER_MAPS, Unit, encode_site
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from tests.edge.agent_site import START, site_config
from tests.edge.hubproc import REPO, HubProcess, running_hub
from tests.support.ports import free_port

EMS = [sys.executable, "-m", "ems"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


@pytest.fixture
async def modbus() -> AsyncIterator[DeviceServer]:
    images = encode_site(Plant("sunny", seed=1, start=START).state.sections())
    specs = [DeviceSpec(int(u), images[u], REGISTER_MAPS[u].max_count) for u in Unit]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0)) as served:
        yield served


def ems(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EMS, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(tmp_path: Path, hub_url: str, port: int, device_id: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(site_config(tmp_path, hub_url, port, device_id))
    return path


def test_a_bad_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "ws://127.0.0.1:9", 502, "cli_bad")
    path.write_text(path.read_text().replace('bus = "sim"\nunit = 2', 'bus = "rs486"\nunit = 2'))
    done = ems("edge", "run", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "config error: device[1].bus: 'rs486' is not a defined bus (defined: sim)"
    )
    assert not (tmp_path / "buffer.db").exists()  # nothing started


def test_no_token_is_a_clear_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "ws://127.0.0.1:9", 502, "cli_token")
    env = {"EMS_TOKEN": "", "CREDENTIALS_DIRECTORY": ""}
    done = ems("edge", "run", "--config", str(path), env=env)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("config error: hub.token: no device token")


async def test_probe_and_scan_read_the_bus(modbus: DeviceServer, tmp_path: Path) -> None:
    path = write_config(tmp_path, "ws://127.0.0.1:9", modbus.tcp_port, "cli_probe")
    probe = await asyncio.to_thread(ems, "edge", "probe", "--config", str(path), "meter")
    assert probe.returncode == 0, probe.stderr
    assert '"grid": {' in probe.stdout
    assert '"power_w": ' in probe.stdout
    scan = await asyncio.to_thread(
        ems, "edge", "scan", "--config", str(path), "sim", "--units", "5,1-4,6"
    )
    assert scan.returncode == 0, scan.stderr
    said, _, pasted = scan.stdout.partition("\n\n")
    # What answered: the SunSpec device names itself, the others by their profile's
    # identifying registers (drivers/profiles/identify.py).
    assert said.splitlines() == [
        'unit 1: sunspec: SunSpec device at 40000: "EMS Switchboard" model "SimInverter"',
        "unit 2: eastron_sdm630: Eastron SDM630 three-phase meter "
        "(voltages 30001/30003, frequency 30071)",
        "unit 3: epever_tracer: EPEver Tracer charge controller (rated data 0x3000-0x3008)",
        "unit 4: seplos_v3: Seplos V3 BMS (pack voltage, SOC, SOH, cell voltage at 0x1000)",
    ]
    # The [[device]] lines paste into a config: the same devices as the site's own.
    configured = load_config(path)
    header = path.read_text().split("[[device]]")[0]
    pasted_path = tmp_path / "pasted.toml"
    pasted_path.write_text(header + pasted)
    rebuilt = load_config(pasted_path)
    assert [(d.name, d.role, d.profile, d.bus, d.unit) for d in rebuilt.devices] == [
        (d.name, d.role, d.profile, d.bus, d.unit) for d in configured.devices
    ]
    missing = await asyncio.to_thread(ems, "edge", "probe", "--config", str(path), "nope")
    assert missing.returncode == 2
    assert "no device named 'nope'" in missing.stderr


@pytest.mark.parametrize(
    ("units", "message"),
    [
        ("10-1", "'10-1': a range goes from low to high (did you mean 1-10?)"),
        ("0-300", "'0-300': unit ids are 0 to 255 (1 to 247 on a serial line)"),
        ("1,x", "'x' is not a unit id or a range"),
    ],
)
def test_scan_units_are_ranges_and_lists_and_bad_ones_are_named(
    tmp_path: Path, units: str, message: str
) -> None:
    path = write_config(tmp_path, "ws://127.0.0.1:9", 502, "cli_units")
    done = ems("edge", "scan", "--config", str(path), "sim", "--units", units)
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1], done.stderr


def test_probe_and_scan_of_a_closed_port_say_the_bus_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, "ws://127.0.0.1:9", port, "cli_closed")
    probe = ems("edge", "probe", "--config", str(path), "meter")
    assert probe.returncode == 1
    assert probe.stderr.strip() == (
        f"ems: meter (bus sim, unit 2): bus unreachable: cannot open 127.0.0.1:{port}"
    )
    scan = ems("edge", "scan", "--config", str(path), "sim", "--units", "1-3")
    assert scan.returncode == 1
    assert scan.stderr.strip() == f"ems: bus sim: bus unreachable: cannot open 127.0.0.1:{port}"


def test_status_without_a_buffer_says_so(tmp_path: Path) -> None:
    path = write_config(tmp_path, "ws://127.0.0.1:9", 502, "cli_status")
    done = ems("edge", "status", "--config", str(path))
    assert done.returncode == 1
    assert "no such file" in done.stderr


class AgentProcess:
    def __init__(self, config: Path, token: str, env: dict[str, str] | None = None) -> None:
        self.log = config.parent / "agent.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*EMS, "edge", "run", "--config", str(config)],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO), "EMS_TOKEN": token, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


async def stored_seqs(hub: HubProcess, device_id: str, since: datetime) -> list[int]:
    rows = await asyncio.to_thread(
        hub.readings,
        device_id,
        start=since - timedelta(minutes=1),
        end=datetime.now(UTC) + timedelta(minutes=1),
    )
    assert len({row["ts"] for row in rows}) == len(rows), "a reading was stored twice"
    return [int(row["seq"]) for row in rows]


async def wait_stored(hub: HubProcess, device_id: str, since: datetime, count: int) -> list[int]:
    """Wait until the hub holds the device's first ``count`` readings (seqs 0 to count - 1)."""
    want = set(range(count))
    async with asyncio.timeout(60):
        while not want <= set(seqs := await stored_seqs(hub, device_id, since)):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    return seqs


async def test_run_streams_notifies_systemd_and_stops_cleanly_on_sigterm(
    hub: HubProcess, modbus: DeviceServer, tmp_path: Path
) -> None:
    token = await asyncio.to_thread(hub.token_add, "cli_run")
    path = write_config(tmp_path, hub.url, modbus.tcp_port, "cli_run")
    # A short path: AF_UNIX addresses hold 107 bytes, pytest's tmp_path can be longer.
    sockets = tempfile.TemporaryDirectory(prefix="ems-")
    notify_path = str(Path(sockets.name) / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.setblocking(False)
    env = {"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "400000"}
    began = datetime.now(UTC)
    agent = AgentProcess(path, token, env)
    try:
        await wait_stored(hub, "cli_run", began, 10)
        messages: list[str] = []
        deadline = time.monotonic() + 30
        while "WATCHDOG=1" not in messages:
            assert time.monotonic() < deadline, f"{messages}\n{agent.text()}"
            try:
                messages.append(notify.recv(4096).decode())
            except BlockingIOError:
                await asyncio.sleep(0.05)
        assert messages[0].startswith("READY=1")
        started = time.monotonic()
        assert await asyncio.to_thread(agent.stop) == 0, agent.text()
        assert time.monotonic() - started < 10
    finally:
        if agent.process.poll() is None:
            agent.process.kill()
        notify.close()
        sockets.cleanup()
    seqs = await stored_seqs(hub, "cli_run", began)
    # Everything buffered before SIGTERM was flushed and acked: no gap, nothing left.
    assert seqs == list(range(len(seqs)))
    status = await asyncio.to_thread(ems, "edge", "status", "--config", str(path))
    assert status.returncode == 0, status.stderr
    assert "buffered readings: 0 " in status.stdout
    assert f"last seq: {len(seqs) - 1}" in status.stdout
    assert "device meter (grid): ok since" in status.stdout


async def test_sigkill_mid_write_then_restart_loses_nothing(
    hub: HubProcess, modbus: DeviceServer, tmp_path: Path
) -> None:
    token = await asyncio.to_thread(hub.token_add, "cli_kill")
    path = write_config(tmp_path, hub.url, modbus.tcp_port, "cli_kill")
    began = datetime.now(UTC)
    for round_ in range(3):
        agent = AgentProcess(path, token)
        try:
            await wait_stored(hub, "cli_kill", began, 8 * (round_ + 1))
            assert await asyncio.to_thread(agent.stop, signal.SIGKILL) == -signal.SIGKILL
        finally:
            if agent.process.poll() is None:
                agent.process.kill()
    # The last reading the killed agents committed to the buffer.
    killed_last = read_status(load_config(path).buffer.path).last_seq
    assert killed_last >= 23  # the hub held 24 before the last SIGKILL
    agent = AgentProcess(path, token)
    try:
        # The restarted agent sends what they committed, then goes on after it. Wait
        # for the hub to hold all of it and one reading more: the agent is running then,
        # and SIGTERM is its clean stop (sent during its start-up, after a fixed sleep,
        # it was the default death of a process not yet handling it: exit -15).
        await wait_stored(hub, "cli_kill", began, killed_last + 2)
        assert await asyncio.to_thread(agent.stop) == 0, agent.text()
    finally:
        if agent.process.poll() is None:
            agent.process.kill()
    seqs = await stored_seqs(hub, "cli_kill", began)
    # Readings committed before each SIGKILL were sent after the restart; the seq
    # went on where it stopped; nothing stored twice (checked in stored_seqs).
    assert seqs == list(range(len(seqs)))
    status = await asyncio.to_thread(ems, "edge", "status", "--config", str(path))
    assert "buffered readings: 0 " in status.stdout


def test_a_broken_generic_profile_file_stops_the_start(tmp_path: Path) -> None:
    path = write_config(tmp_path, "ws://127.0.0.1:9", 502, "cli_generic")
    text = path.read_text().replace(
        'profile = "seplos_v3"', 'profile = "generic"\nprofile_file = "bms.toml"'
    )
    path.write_text(text)
    (tmp_path / "bms.toml").write_text("this is not a register map")
    done = ems("edge", "run", "--config", str(path), env={"EMS_TOKEN": "t"})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("config error: device[3].profile_file: ")


def test_scan_of_an_rtu_bus_refuses_ids_a_serial_line_cannot_have(tmp_path: Path) -> None:
    path = write_config(tmp_path, "ws://127.0.0.1:9", 502, "cli_rtu_units")
    text = path.read_text()
    start = text.index("[[bus]]")
    end = text.index("[[device]]")
    path.write_text(
        text[:start] + '[[bus]]\nname = "sim"\ntype = "rtu"\ndevice = "/dev/null"\n\n' + text[end:]
    )
    done = ems("edge", "scan", "--config", str(path), "sim", "--units", "0-2")
    assert done.returncode == 2
    assert done.stderr.strip() == "ems: --units: an rtu bus takes unit ids 1 to 247"
