"""Hub processes of a cluster (``ems hub serve --cluster``), started and stopped from async tests.

Like tests/hub/served_hub.py, but without blocking the event loop while a hub
starts, so devices and dashboards keep streaming while a test restarts one.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hub.auth import hash_token, new_token
from hub.storage import create_storage
from hub.storage.base import TokenRecord
from tests.hub.served_hub import hub_env
from tests.support.polling import until

LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class HubProcess:
    name: str
    directory: Path
    database_url: str
    redis_url: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    async def start(self) -> None:
        """Start (again, on the same port once it had one) and wait until it listens."""
        self.directory.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {
            **hub_env(self.directory),
            "EMS_DATABASE_URL": self.database_url,
            "EMS_CLUSTER_URL": self.redis_url,
            "EMS_CLUSTER_HUB_ID": self.name,
        }
        with self.log_path.open("ab") as log:
            # Popen returns at once (the start is awaited below); no blocking wait here.
            self.process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "ems", "hub", "serve", "--port", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
        async with asyncio.timeout(60):
            while (match := LISTENING.search(self.log_path.read_bytes()[offset:])) is None:
                assert self.process.poll() is None, self.log_path.read_text()
                await asyncio.sleep(0.05)
        self.port = int(match[1])

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    async def stop(self) -> int:
        assert self.process is not None
        process = self.process
        process.terminate()
        await until(lambda: process.poll() is not None)
        return process.returncode

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


async def add_tokens(database_url: str, directory: Path, devices: list[str]) -> dict[str, str]:
    """A token per device, straight into the shared database (as ``ems hub token add``)."""
    from datetime import UTC, datetime

    storage = create_storage(database_url, directory)
    await storage.open()
    try:
        tokens = {}
        for device in devices:
            token = new_token()
            await storage.add_token(TokenRecord(device, hash_token(token), datetime.now(UTC)))
            tokens[device] = token
        return tokens
    finally:
        await storage.close()


async def stored_seqs(database_url: str, directory: Path, device: str) -> list[int]:
    """Every stored reading's seq of the device (a seq twice would be a reading stored twice)."""
    from datetime import UTC, datetime, timedelta

    storage = create_storage(database_url, directory)
    await storage.open()
    try:
        now = datetime.now(UTC)
        rows = await storage.readings(
            device, now - timedelta(days=2), now + timedelta(hours=1), 10_000
        )
        return [int(row["seq"]) for row in rows]
    finally:
        await storage.close()
