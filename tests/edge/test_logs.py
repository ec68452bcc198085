"""Structured logs, read from a real ``ems edge run`` process's output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from simulation.modbus_server import DeviceServer, Fault, FaultKind
from tests.edge.agent_site import site_config
from tests.edge.hubproc import EMS, REPO, HubProcess, running_hub
from tests.edge.test_cli import wait_stored


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


class Agent:
    """``ems edge run`` with its stderr and stdout in a file."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str]) -> None:
        self.log = tmp_path / "agent.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*EMS, "edge", "run", "--config", str(tmp_path / "edge.toml"), *args],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    async def wait_for(self, text: str) -> None:
        async with asyncio.timeout(60):
            while not any(text in line for line in self.lines()):
                assert self.process.poll() is None, "\n".join(self.lines())
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        try:
            self.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(self.process.wait, 30)
            assert code == 0, "\n".join(self.lines())
        finally:
            if self.process.poll() is None:
                self.process.kill()


def write_config(tmp_path: Path, hub_url: str, port: int, device_id: str) -> None:
    (tmp_path / "edge.toml").write_text(site_config(tmp_path, hub_url, port, device_id))


async def test_json_logs_are_one_object_per_line_with_the_fields_of_the_message(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
) -> None:
    served, _ = site
    token = await asyncio.to_thread(hub.token_add, "logs_json")
    write_config(tmp_path, hub.url, served.tcp_port, "logs_json")
    served.set_fault(2, Fault(FaultKind.SILENT))  # the meter does not answer
    began = datetime.now(UTC)
    agent = Agent(tmp_path, "--log-format", "json", env={"EMS_TOKEN": token})
    try:
        await wait_stored(hub, "logs_json", began, 5)
        await agent.wait_for("failing")
    finally:
        await agent.stop()
    entries: list[dict[str, Any]] = [json.loads(line) for line in agent.lines()]
    for entry in entries:
        assert {"ts", "level", "logger", "msg"} <= set(entry), entry
        stamp = datetime.fromisoformat(entry["ts"])
        assert began.replace(microsecond=0) <= stamp <= datetime.now(UTC)
        assert entry["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    (running,) = [e for e in entries if e["msg"].startswith("agent logs_json running: ")]
    assert running["logger"] == "edge.agent"
    assert (running["device_id"], running["devices"], running["buses"]) == ("logs_json", 4, 1)
    assert running["url"].endswith("/ws/device/logs_json")
    (failing,) = [e for e in entries if e["msg"].startswith("device meter (bus sim, unit 2) fail")]
    assert failing["level"] == "WARNING"
    assert failing["logger"] == "edge.poller"
    assert (failing["device"], failing["bus"], failing["unit"]) == ("meter", "sim", 2)
    assert failing["state"] == "failing"
    assert failing["msg"] == (
        f"device meter (bus sim, unit 2) failing: {failing['error']}; retrying with backoff"
    )
    assert entries[-1]["msg"] == "agent stopped"
    ok = [e for e in entries if e.get("state") == "ok"]
    assert {e["device"] for e in ok} == {"inverter", "charger", "bms"}


async def test_the_environment_chooses_json_and_plain_text_under_systemd_has_no_timestamp(
    tmp_path: Path,
) -> None:
    # No hub listens there and no device answers: the start-up lines are enough.
    write_config(tmp_path, "ws://127.0.0.1:9", 9, "logs_env")
    env = {"EMS_TOKEN": "t", "JOURNAL_STREAM": "8:12345"}
    agent = Agent(tmp_path, env={**env, "EMS_LOG_FORMAT": "json"})
    try:
        await agent.wait_for("reconnecting in")
    finally:
        await agent.stop()
    entries = [json.loads(line) for line in agent.lines()]
    (reconnecting, *_) = [e for e in entries if e["msg"].startswith("reconnecting in ")]
    assert reconnecting["logger"] == "edge.uplink"
    assert reconnecting["reason"] == "unreachable"
    assert reconnecting["msg"] == f"reconnecting in {reconnecting['delay_s']:.1f} s"

    agent = Agent(tmp_path, env=env)  # the default: text; the journal stamps the lines
    try:
        await agent.wait_for("reconnecting in")
    finally:
        await agent.stop()
    lines = agent.lines()
    assert "INFO edge.agent: agent logs_env running: 4 devices on 1 buses, to " in "\n".join(lines)
    assert all(line.split(" ", 1)[0] in {"INFO", "WARNING", "ERROR"} for line in lines), lines


def test_an_unknown_log_format_is_a_one_line_error(tmp_path: Path) -> None:
    write_config(tmp_path, "ws://127.0.0.1:9", 9, "logs_bad")
    done = subprocess.run(
        [*EMS, "edge", "run", "--config", str(tmp_path / "edge.toml")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "EMS_TOKEN": "t", "EMS_LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "ems: EMS_LOG_FORMAT: expected 'text' or 'json', not 'xml'"
