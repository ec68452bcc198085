"""`ems hub serve` and `ems hub token ...` as real processes: CLI, SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.auth import hash_token, new_token
from hub.storage import storage_from_url
from hub.storage.base import TokenRecord
from tests.support.hub import reading, recv_ack_seqs, recv_json
from tests.tcp_proxy import TcpProxy

LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def ems(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMS_DATA_DIR": str(data_dir)}
    env.pop("EMS_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "ems", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


class Served:
    def __init__(self, process: subprocess.Popen[bytes], port: int, stderr: Path) -> None:
        self.process = process
        self.port = port
        self.stderr = stderr

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {**os.environ, "EMS_DATA_DIR": str(tmp_path / "data")}
    env.pop("EMS_DATABASE_URL", None)
    stderr = tmp_path / "hub.log"
    with stderr.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ems", "hub", "serve", "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, stderr.read_text()
            match = LISTENING.search(stderr.read_bytes())
            port = int(match[1]) if match else None
            time.sleep(0.05)
        yield Served(process, port, stderr)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_token_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = ems(data, "hub", "token", "add", "ems_001")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert len(token) >= 43
    assert " " not in token
    assert token not in ems(data, "hub", "token", "list").stdout
    assert ems(data, "hub", "token", "add", "ems_002").returncode == 0
    listing = ems(data, "hub", "token", "list")
    assert [line.split("\t")[0] for line in listing.stdout.splitlines()] == ["ems_001", "ems_002"]
    # No trace of the token itself anywhere under the data directory.
    for path in data.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes()
    revoked = ems(data, "hub", "token", "revoke", "ems_001")
    assert revoked.returncode == 0, revoked.stderr
    again = ems(data, "hub", "token", "revoke", "ems_001")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == "ems: no token for ems_001"
    bad = ems(data, "hub", "token", "add", "not valid!")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1


async def test_token_added_and_revoked_from_another_process(served: Served, tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = await asyncio.to_thread(ems, data, "hub", "token", "add", "ems_007")
    token = added.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    async with asyncio.timeout(30):
        while True:  # the hub picks the new token up within about a second
            try:
                device = await connect(served.url("/ws/device/ems_007"), additional_headers=headers)
                break
            except InvalidStatus:
                await asyncio.sleep(0.2)
    await device.send(json.dumps(reading(1)))
    await recv_ack_seqs(device, {1})
    await asyncio.to_thread(ems, data, "hub", "token", "revoke", "ems_007")
    async with asyncio.timeout(30):
        await device.wait_closed()
    assert device.close_code == 1008


async def test_sigterm_flushes_closes_with_1001_and_exits_0(served: Served, tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = await asyncio.to_thread(ems, data, "hub", "token", "add", "ems_001")
    token = added.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    async with asyncio.timeout(30):
        while True:
            try:
                device = await connect(served.url("/ws/device/ems_001"), additional_headers=headers)
                break
            except InvalidStatus:
                await asyncio.sleep(0.2)
    dashboard = await connect(served.url("/ws/dashboard/ems_001"))
    assert (await recv_json(dashboard))["type"] == "status"
    for seq in range(100):
        await device.send(json.dumps(reading(seq)))
    acked = await recv_ack_seqs(device, set(range(100)))
    assert acked >= set(range(100))

    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        await device.wait_closed()
        with contextlib.suppress(ConnectionClosed):
            while True:  # the readings it was sent, then the close frame
                await dashboard.recv()
    assert device.close_code == 1001
    assert dashboard.close_code == 1001
    code = await asyncio.to_thread(served.process.wait, 10)
    elapsed = time.monotonic() - started
    log = served.stderr.read_text()
    assert code == 0, log
    assert elapsed < 8, log
    assert "Traceback" not in log, log
    assert " ERROR " not in log, log
    # Everything that was acked is in the database after the stop.
    async with storage_from_url(None, data) as storage:
        now = datetime.now(UTC)
        stored = await storage.readings("ems_001", now - timedelta(days=1), now, 1000)
    assert [r["seq"] for r in stored] == list(range(100))


async def test_sigterm_with_the_database_cut_off_still_exits_0_quickly(
    tmp_path: Path, postgres_url: str
) -> None:
    target = urlsplit(postgres_url)
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        database = proxy.rewrite_url(postgres_url)
        token = new_token()
        async with storage_from_url(database) as storage:
            await storage.add_token(TokenRecord("ems_cut", hash_token(token), datetime.now(UTC)))
        log_path = tmp_path / "hub.log"
        env = {**os.environ, "EMS_DATA_DIR": str(tmp_path / "data")}
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; waited in a thread
                [
                    sys.executable,
                    "-m",
                    "ems",
                    "hub",
                    "serve",
                    "--port",
                    "0",
                    "--database",
                    database,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                env=env,
            )
        try:
            async with asyncio.timeout(60):
                while not (match := LISTENING.search(log_path.read_bytes())):
                    assert process.poll() is None, log_path.read_text()
                    await asyncio.sleep(0.05)
            url = f"ws://127.0.0.1:{int(match[1])}/ws/device/ems_cut"
            device = await connect(url, additional_headers={"Authorization": f"Bearer {token}"})
            await device.send(json.dumps(reading(1)))
            await recv_ack_seqs(device, {1})
            await proxy.cut()
            for seq in range(2, 50):
                await device.send(json.dumps(reading(seq)))
            await asyncio.sleep(0.5)
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                with contextlib.suppress(ConnectionClosed):
                    while True:  # no ack can come: storage is unreachable
                        frame = json.loads(await device.recv())
                        assert frame["type"] != "ack", frame
            assert device.close_code == 1001
            code = await asyncio.to_thread(process.wait, 15)
            log = log_path.read_text()
            assert code == 0, log
            assert time.monotonic() - started < 10, log
            # (asyncpg's pool logs its failed refills with a traceback at WARNING: not ours.)
            assert " ERROR " not in log, log
            assert "Exception in ASGI application" not in log, log
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
