"""The simple publisher against a real ``websockets`` server on loopback that records all."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from simulation.client import (
    ConfigError,
    Publisher,
    PublisherConfig,
    build_configs,
    parser,
    run_publishers,
)
from telemetry import Reading
from telemetry.backoff import BackoffPolicy
from tests.support.polling import until
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
FAST_BACKOFF = BackoffPolicy(0.05, 0.2)


@dataclass
class Session:
    path: str
    authorization: str | None
    frames: list[str] = field(default_factory=list)
    close_code: int | None = None


@dataclass
class Recorder:
    """What a recording hub stand-in saw, with knobs for misbehaving."""

    sessions: list[Session] = field(default_factory=list)
    refuse_first: int = 0
    close_after: int | None = None
    reply: Callable[[dict[str, object]], str | None] | None = None
    refused: int = 0
    got_frame: asyncio.Event = field(default_factory=asyncio.Event)

    def frames(self) -> list[dict[str, object]]:
        return [json.loads(frame) for s in self.sessions for frame in s.frames]

    async def wait_frames(self, count: int, within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while len(self.frames()) < count:
                self.got_frame.clear()
                await self.got_frame.wait()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.refused < self.refuse_first:
            self.refused += 1
            return connection.respond(403, "forbidden\n")
        return None

    async def handler(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        session = Session(request.path, request.headers.get("Authorization"))
        self.sessions.append(session)
        async for message in connection:
            assert isinstance(message, str)
            session.frames.append(message)
            self.got_frame.set()
            if self.reply is not None:
                answer = self.reply(json.loads(message))
                if answer is not None:
                    await connection.send(answer)
            if self.close_after is not None and len(session.frames) >= self.close_after:
                await connection.close(1001, "going away")
        session.close_code = connection.close_code


def _port(server: Server) -> int:
    return int(server.sockets[0].getsockname()[1])


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    async with serve(rec.handler, "127.0.0.1", 0, process_request=rec.process_request) as server:
        yield rec, f"ws://127.0.0.1:{_port(server)}"


def _config(url: str, **overrides: object) -> PublisherConfig:
    values: dict[str, object] = {
        "hub_url": url,
        "device_id": "ems_001",
        "token": "s3cret-token",
        "interval_s": 0.05,
        "backoff": FAST_BACKOFF,
    }
    values.update(overrides)
    return PublisherConfig(**values)  # type: ignore[arg-type]


async def _run_until(publisher: Publisher, condition: Callable[[], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop), name="test-publisher")
    try:
        await condition()
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task


async def test_sends_valid_readings_to_the_device_door_with_the_bearer_header(
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    before = datetime.now(UTC)
    await _run_until(Publisher(_config(url)), lambda: rec.wait_frames(3))
    assert len(rec.sessions) == 1
    session = rec.sessions[0]
    assert session.path == "/ws/device/ems_001"
    assert session.authorization == "Bearer s3cret-token"
    assert session.close_code == 1000
    for frame in rec.frames():
        assert "seq" not in frame  # without --seq the publisher sends none
        reading = Reading.model_validate(frame)
        assert before - timedelta(seconds=1) <= reading.ts <= datetime.now(UTC)
        for section in ("inverter", "grid", "solar", "battery", "extra"):
            assert getattr(reading, section) is not None


async def test_seq_flag_sends_a_strictly_increasing_counter(
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    await _run_until(Publisher(_config(url, send_seq=True)), lambda: rec.wait_frames(4))
    seqs = [frame["seq"] for frame in rec.frames()]
    assert all(isinstance(seq, int) for seq in seqs)
    assert seqs == list(range(int(seqs[0]), int(seqs[0]) + len(seqs)))  # type: ignore[call-overload]


async def test_acks_and_errors_from_the_hub_are_counted(
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder

    def reply(frame: dict[str, object]) -> str:
        seq = frame["seq"]
        if len(rec.frames()) == 2:
            return json.dumps({"type": "error", "seq": seq, "reason": "battery.soc_pct: nope"})
        return json.dumps({"type": "ack", "ranges": [[seq, seq]]})

    rec.reply = reply
    publisher = Publisher(_config(url, send_seq=True))
    await _run_until(publisher, lambda: rec.wait_frames(5))
    assert publisher.stats.errors == 1
    assert publisher.stats.acked >= 3
    assert publisher.stats.sent >= 5


async def test_reconnects_with_a_logged_backoff_when_the_hub_closes(
    recorder: tuple[Recorder, str], caplog: pytest.LogCaptureFixture
) -> None:
    rec, url = recorder
    rec.close_after = 2
    caplog.set_level(logging.WARNING, logger="simulation.client")
    publisher = Publisher(_config(url))
    await _run_until(publisher, lambda: rec.wait_frames(6))
    assert len(rec.sessions) >= 3
    assert all(s.authorization == "Bearer s3cret-token" for s in rec.sessions)
    warnings = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(warnings) >= 2
    assert "1001" in warnings[0]
    for message in warnings:
        delay = float(message.split("reconnecting in ")[1].split(" s")[0])
        # Each connection opened resets the attempt count: the first, jittered delay.
        assert FAST_BACKOFF.initial_s / 2 <= delay <= FAST_BACKOFF.initial_s
    for frame in rec.frames():
        Reading.model_validate(frame)


async def test_a_refused_handshake_is_retried_with_growing_delays(
    recorder: tuple[Recorder, str], caplog: pytest.LogCaptureFixture
) -> None:
    rec, url = recorder
    rec.refuse_first = 3
    caplog.set_level(logging.WARNING, logger="simulation.client")
    await _run_until(Publisher(_config(url)), lambda: rec.wait_frames(1))
    warnings = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(warnings) == 3
    assert all("HTTP 403" in message for message in warnings)
    delays = [float(m.split("reconnecting in ")[1].split(" s")[0]) for m in warnings]
    for attempt, delay in enumerate(delays):
        ceiling = FAST_BACKOFF.step(attempt + 1)
        assert ceiling / 2 <= delay <= ceiling


async def test_keeps_trying_until_the_hub_comes_up() -> None:
    port = free_port()
    rec = Recorder()
    publisher = Publisher(_config(f"ws://127.0.0.1:{port}"))
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop), name="test-publisher")
    try:
        await until(lambda: publisher.stats.failures >= 3)
        assert publisher.stats.connections == 0
        async with serve(rec.handler, "127.0.0.1", port):
            await rec.wait_frames(2)
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task
    assert publisher.stats.connections == 1


async def test_devices_option_runs_one_publisher_per_device_id(
    recorder: tuple[Recorder, str], tmp_path: Path
) -> None:
    rec, url = recorder
    tokens = tmp_path / "tokens"
    tokens.write_text("# from ems hub token add\nsite-0002 token-two\n", encoding="utf-8")
    args = parser().parse_args(["--devices", "3", "--interval", "0.05", "--tokens", str(tokens)])
    configs = build_configs(args, {"DEVICE_ID": "site", "API_TOKEN": "shared", "HUB_URL": url})
    assert [c.seed for c in configs] == [0, 1, 2]
    stop = asyncio.Event()
    task = asyncio.create_task(run_publishers(configs, stop), name="test-publishers")
    try:
        await rec.wait_frames(9)
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task
    by_path = {s.path: s for s in rec.sessions}
    assert set(by_path) == {f"/ws/device/site-000{n}" for n in (1, 2, 3)}
    assert by_path["/ws/device/site-0001"].authorization == "Bearer shared"
    assert by_path["/ws/device/site-0002"].authorization == "Bearer token-two"
    # Each device has its own plant seed: its own cells, for one.
    cells = {
        path: json.loads(s.frames[0])["extra"]["bms_cell_voltage_01_v"]
        for path, s in by_path.items()
    }
    assert len(set(cells.values())) == 3


def _args(*argv: str) -> argparse.Namespace:
    return parser().parse_args(list(argv))


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({"API_TOKEN": "t"}, [], "DEVICE_ID is not set"),
        ({"DEVICE_ID": "ems_001"}, [], "no token for ems_001"),
        ({"DEVICE_ID": "ems_001", "API_TOKEN": "t", "HUB_URL": "http://x"}, [], "ws://"),
        ({"DEVICE_ID": "ems 001", "API_TOKEN": "t"}, [], "not 1-64 characters"),
        ({"DEVICE_ID": "ems_001", "API_TOKEN": "t"}, ["--scenario", "hail"], "unknown scenario"),
    ],
)
def test_unusable_settings_are_one_clear_error(
    env: dict[str, str], argv: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_configs(_args(*argv), env)


def test_default_hub_url_and_the_single_device_id() -> None:
    (config,) = build_configs(_args("--seq"), {"DEVICE_ID": "ems_001", "API_TOKEN": "t"})
    assert config.url == "ws://127.0.0.1:8000/ws/device/ems_001"
    assert config.send_seq


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_the_module_stops_cleanly_on_a_signal(
    recorder: tuple[Recorder, str], signum: signal.Signals
) -> None:
    rec, url = recorder
    env = {**os.environ, "DEVICE_ID": "ems_cli", "API_TOKEN": "tok", "HUB_URL": url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulation.client",
        "--interval",
        "0.05",
        "--seq",
        cwd=REPO,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await rec.wait_frames(2, within_s=20)
    finally:
        process.send_signal(signum)
        async with asyncio.timeout(10):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert rec.sessions[0].path == "/ws/device/ems_cli"
    await until(lambda: rec.sessions[0].close_code is not None)
    assert rec.sessions[0].close_code == 1000
    for frame in rec.frames():
        Reading.model_validate(frame)


async def test_the_script_path_runs_and_reports_missing_settings_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DEVICE_ID", "API_TOKEN"}}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "simulation/client.py",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert stderr.decode().strip() == "error: DEVICE_ID is not set"
    helped = await asyncio.create_subprocess_exec(
        sys.executable,
        "simulation/client.py",
        "--help",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        stdout, _ = await helped.communicate()
    assert helped.returncode == 0
    assert "--devices" in stdout.decode()


async def test_readings_carry_the_plants_energy_since_the_previous_one(
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    # A simulated minute per second: the counters move between readings.
    publisher = Publisher(_config(url, speed=60.0))
    await _run_until(publisher, lambda: rec.wait_frames(8))
    frames = rec.frames()
    assert "energy" not in frames[0]  # nothing before the first
    rows = frames[1:]
    assert all(frame["energy"]["complete"] for frame in rows)  # type: ignore[index]
    ts = [datetime.fromisoformat(str(frame["ts"])).timestamp() for frame in frames]
    for index, frame in enumerate(rows, 1):
        energy = frame["energy"]
        assert isinstance(energy, dict)
        # span_s is wall time; the energy is the plant's over speed times as long.
        assert energy["span_s"] == pytest.approx(ts[index] - ts[index - 1], abs=0.002)
        assert energy["house_wh"] >= 0

    def rise(section: str, name: str) -> float:
        first, last = frames[0][section], frames[-1][section]
        assert isinstance(first, dict)
        assert isinstance(last, dict)
        return float(last[name]) - float(first[name])

    def summed(key: str) -> float:
        return sum(float(frame["energy"][key]) for frame in rows)  # type: ignore[index]

    assert summed("pv_wh") == pytest.approx(rise("solar", "energy_total_wh"), abs=0.001)
    assert summed("import_wh") == pytest.approx(rise("grid", "import_energy_wh"), abs=0.001)
    assert summed("export_wh") == pytest.approx(rise("grid", "export_energy_wh"), abs=0.001)
    # The house used energy (day or night: the plant starts at the wall clock's hour).
    assert summed("house_wh") > 0.5
