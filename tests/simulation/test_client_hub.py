"""The simple publisher against the real hub: `ems hub serve` and the client as processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from telemetry import Reading

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Hub:
    port: int
    data_dir: Path

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {**os.environ, "EMS_DATA_DIR": str(self.data_dir)}
        env.pop("EMS_DATABASE_URL", None)
        return env

    def add_token(self, device_id: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ems", "hub", "token", "add", device_id],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=REPO,
            timeout=60,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    data_dir = tmp_path / "data"
    env = {**os.environ, "EMS_DATA_DIR": str(data_dir)}
    env.pop("EMS_DATABASE_URL", None)
    log_path = tmp_path / "hub.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ems", "hub", "serve", "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            cwd=REPO,
        )
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            match = LISTENING.search(log_path.read_bytes())
            port = int(match[1]) if match else None
            time.sleep(0.05)
        yield Hub(port, data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def hub_with_tokens(hub: Hub, tmp_path: Path) -> tuple[Hub, dict[str, str], Path]:
    """The hub, tokens for three devices, and a tokens file listing them."""
    ids = ["sim_001", "site-0001", "site-0002"]
    tokens = {device_id: await asyncio.to_thread(hub.add_token, device_id) for device_id in ids}
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(
        "".join(f"{device_id} {token}\n" for device_id, token in tokens.items()),
        encoding="utf-8",
    )
    return hub, tokens, tokens_file


async def _start(hub: Hub, env_extra: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "HUB_URL": hub.ws, **env_extra}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulation.client",
        "--interval",
        "0.1",
        *args,
        cwd=REPO,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


async def _stored(hub: Hub, device_id: str, count: int) -> list[dict[str, object]]:
    """The device's stored readings, once there are at least ``count``."""
    async with httpx.AsyncClient(base_url=hub.http) as client, asyncio.timeout(30):
        while True:
            response = await client.get(f"/api/devices/{device_id}/readings")
            response.raise_for_status()
            readings: list[dict[str, object]] = response.json()["readings"]
            if len(readings) >= count:
                return readings
            await asyncio.sleep(0.2)


async def test_readings_reach_dashboards_and_storage_and_seq_is_acked(
    hub_with_tokens: tuple[Hub, dict[str, str], Path],
) -> None:
    hub, tokens, _ = hub_with_tokens
    async with connect(f"{hub.ws}/ws/dashboard/sim_001") as dashboard:
        process = await _start(
            hub, {"DEVICE_ID": "sim_001", "API_TOKEN": tokens["sim_001"]}, "--seq"
        )
        live: list[dict[str, object]] = []
        try:
            async with asyncio.timeout(30):
                while len(live) < 3:
                    frame = json.loads(await dashboard.recv())
                    if frame["type"] == "reading":
                        live.append(frame)
            await _stored(hub, "sim_001", 3)
            await asyncio.sleep(1.0)  # the ack follows each commit
        finally:
            stderr = await _stop(process)
    for frame in live:
        assert frame["device_id"] == "sim_001"
        Reading.model_validate(frame)
    seqs = [frame["seq"] for frame in live if isinstance(frame["seq"], int)]
    assert len(seqs) == len(live)
    assert seqs == sorted(seqs)
    stored = await _stored(hub, "sim_001", 3)
    for row in stored:
        Reading.model_validate(row)
    summary = re.search(r"stopped after (\d+) readings \((\d+) acked, (\d+) rejected\)", stderr)
    assert summary is not None, stderr
    sent, acked, rejected = map(int, summary.groups())
    assert 3 <= acked <= sent  # the hub acked what it committed
    assert rejected == 0


async def test_readings_without_seq_are_stored(
    hub_with_tokens: tuple[Hub, dict[str, str], Path],
) -> None:
    hub, tokens, _ = hub_with_tokens
    process = await _start(hub, {"DEVICE_ID": "sim_001", "API_TOKEN": tokens["sim_001"]})
    try:
        stored = await _stored(hub, "sim_001", 3)
    finally:
        await _stop(process)
    assert all("seq" not in row or row["seq"] is None for row in stored)


async def test_devices_option_publishes_for_each_device_with_its_own_token(
    hub_with_tokens: tuple[Hub, dict[str, str], Path],
) -> None:
    hub, _, tokens_file = hub_with_tokens
    process = await _start(
        hub, {"DEVICE_ID": "site"}, "--devices", "2", "--tokens", str(tokens_file), "--seq"
    )
    try:
        for device_id in ("site-0001", "site-0002"):
            await _stored(hub, device_id, 2)
    finally:
        stderr = await _stop(process)
    # The hub picks new tokens up within about a second: a first 403 is retried.
    for device_id in ("site-0001", "site-0002"):
        assert f"publisher[{device_id}]: connected" in stderr


async def test_a_wrong_token_is_refused_and_retried_with_backoff(
    hub_with_tokens: tuple[Hub, dict[str, str], Path],
) -> None:
    hub, tokens, _ = hub_with_tokens
    process = await _start(hub, {"DEVICE_ID": "sim_001", "API_TOKEN": tokens["site-0001"]})
    try:
        await asyncio.sleep(2.0)
    finally:
        stderr = await _stop(process)
    refusals = [line for line in stderr.splitlines() if "reconnecting in" in line]
    assert len(refusals) >= 2
    assert all("HTTP 403" in line or "1008" in line for line in refusals)
    async with httpx.AsyncClient(base_url=hub.http) as client:
        response = await client.get("/api/devices/sim_001/readings")
    assert response.json()["readings"] == []
