"""The real hub as a process (``ems hub serve`` with its embedded SQLite storage) for edge tests.

Tokens are made with ``ems hub token add`` and stored readings read back
through the HTTP API, as an operator would: the edge tests know nothing of
the hub's insides.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from telemetry import format_ts
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
EMS = [sys.executable, "-m", "ems"]


@dataclass
class HubProcess:
    data_dir: Path
    database: str | None = None  # postgresql://...; None: the embedded SQLite
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "EMS_DATA_DIR": str(self.data_dir), "PYTHONPATH": str(REPO)}
        env.pop("EMS_DATABASE_URL", None)
        if self.database is not None:
            env["EMS_DATABASE_URL"] = self.database
        return env

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token_add(self, device_id: str) -> str:
        done = subprocess.run(
            [*EMS, "hub", "token", "add", device_id],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        token = done.stdout.strip().splitlines()[-1]
        self.wait_token_live(device_id, token)
        return token

    def wait_token_live(self, device_id: str, token: str, within: float = 30.0) -> None:
        """Until the running hub accepts the token: it re-reads tokens about once a second,
        and an agent refused in the meantime would wait a minute (its auth backoff)."""
        if self.process is None or self.process.poll() is not None:
            return  # not serving: the token is read at start
        deadline = time.monotonic() + within
        while True:
            try:
                with connect(
                    f"{self.url}/ws/device/{device_id}",
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=10,
                ) as ws:
                    ws.close()
                return
            except InvalidStatus as err:
                if err.response.status_code != 403 or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def token_revoke(self, device_id: str) -> None:
        subprocess.run(
            [*EMS, "hub", "token", "revoke", device_id],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            timeout=60,
            check=True,
        )

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "hub.log").open("ab")
        self.process = subprocess.Popen(
            [*EMS, "hub", "serve", "--port", str(self.port)],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if httpx.get(f"{self.http}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the hub did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        process = self.process
        if process is None or process.poll() is not None:
            return process.returncode if process else 0
        process.send_signal(sig)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=30)

    def log(self) -> str:
        path = self.data_dir / "hub.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def readings(
        self, device_id: str, *, start: datetime, end: datetime, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        """Stored readings in time order, fetched page by page through the API."""
        found: list[dict[str, Any]] = []
        cursor = start
        while True:
            answer = httpx.get(
                f"{self.http}/api/devices/{device_id}/readings",
                params={"start": format_ts(cursor), "end": format_ts(end), "limit": str(limit)},
                timeout=30.0,
            )
            answer.raise_for_status()
            page: list[dict[str, Any]] = answer.json()["readings"]
            found.extend(page)
            if len(page) < limit:
                return found
            cursor = datetime.fromisoformat(page[-1]["ts"]) + timedelta(microseconds=1)


@contextmanager
def running_hub(data_dir: Path) -> Iterator[HubProcess]:
    hub = HubProcess(data_dir)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
