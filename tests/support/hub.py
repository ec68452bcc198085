"""A real hub on an ephemeral port (in this process's event loop), and its wire helpers.

The server is our ``HubServer`` on real uvicorn with real storage: an SQLite
file or the run's PostgreSQL database. The fixtures are in tests/hub/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from hub.app import create_app
from hub.auth import hash_token, new_token
from hub.runtime import Hub, HubSettings
from hub.server import HubServer, uvicorn_config
from hub.storage import create_storage
from hub.storage.base import Storage, TokenRecord
from tests.support.polling import until

# Readings of a test run are stamped after this instant (seq seconds after it):
# one fixed base, so building the same seq twice gives the same reading.
# Readings of a test run are stamped after this instant (seq seconds after it):
# one fixed base, so building the same seq twice gives the same reading.
BASE_TS = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def reading(seq: int | None, ts: datetime | None = None, **extra: Any) -> dict[str, Any]:
    """A valid reading in wire form; ``ts`` defaults to seq seconds after ``BASE_TS``."""
    when = ts or (BASE_TS + timedelta(seconds=seq or 0))
    body: dict[str, Any] = {
        "ts": when.isoformat().replace("+00:00", "Z"),
        "grid": {"power_w": 100.0 + (seq or 0), "voltage_v": 230.0},
        "battery": {"soc_pct": 50.0},
    }
    if seq is not None:
        body["seq"] = seq
    body.update(extra)
    return body


@dataclass
class RunningHub:
    server: HubServer
    hub: Hub
    port: int
    storage: Storage
    _clients: list[ClientConnection] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def add_token(self, device_id: str) -> str:
        """A new token for the device, once the hub's token view holds it."""
        token = new_token()
        await self.storage.add_token(TokenRecord(device_id, hash_token(token), datetime.now(UTC)))
        await until(lambda: self.hub.knows_token(device_id, hash_token(token)))
        return token

    async def device(self, device_id: str, token: str | None, **kwargs: Any) -> ClientConnection:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        client = await connect(
            self.ws(f"/ws/device/{device_id}"), additional_headers=headers, **kwargs
        )
        self._clients.append(client)
        return client

    async def dashboard(self, device_id: str, **kwargs: Any) -> ClientConnection:
        client = await connect(self.ws(f"/ws/dashboard/{device_id}"), **kwargs)
        self._clients.append(client)
        return client

    async def metrics(self) -> dict[str, float]:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.http}/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)

    async def stored(self, device_id: str) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return await self.storage.readings(
            device_id, now - timedelta(days=1), now + timedelta(hours=1), 10_000
        )


def parse_metrics(text: str) -> dict[str, float]:
    """``{'name{label="v"}': value}`` for every sample line."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def recv_json(client: ClientConnection, within: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        message = await client.recv()
    value = json.loads(message)
    assert isinstance(value, dict)
    return value


async def recv_ack_seqs(client: ClientConnection, want: set[int], within: float = 30.0) -> set[int]:
    """Collect acked seqs until ``want`` is covered."""
    got: set[int] = set()
    async with asyncio.timeout(within):
        while not want <= got:
            frame = json.loads(await client.recv())
            if frame["type"] == "ack":
                for first, last in frame["ranges"]:
                    got.update(range(first, last + 1))
    return got


@contextlib.asynccontextmanager
async def running_hub(
    database_url: str | None, data_dir: Path, **settings: Any
) -> AsyncIterator[RunningHub]:
    settings.setdefault("token_refresh_s", 0.2)
    hub_settings = HubSettings(database_url=database_url, data_dir=data_dir, **settings)
    storage = create_storage(database_url, data_dir)
    app = create_app(hub_settings, storage=storage)
    server = HubServer(uvicorn_config(app, "127.0.0.1", 0), app, handle_signals=False)
    task = asyncio.create_task(server.serve(), name="test.hub")
    try:
        await until(lambda: server.started or task.done())
        if task.done():
            task.result()
        running = RunningHub(server, app.state.hub, server.port, storage)
        yield running
    finally:
        for client in running._clients if "running" in locals() else []:
            await close_client(client)
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def close_client(client: ClientConnection, within: float = 5.0) -> None:
    """Close ``client`` and release its socket, whatever the test left unread.

    A client the test stopped reading has its reading paused (websockets' ``max_queue``
    flow control, 16 frames): it never reads the hub's close frame, so the closing
    handshake cannot finish, and a close cut short by a timeout left the socket open,
    for the garbage collector to report (ResourceWarning). Such a client is aborted at
    once; any other is closed properly, and aborted if that does not finish in time.
    """
    if client.transport.is_reading():
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(client.close(), within)
    client.transport.abort()  # a no-op once the close went through


def device_id() -> str:
    return f"dev_{secrets.token_hex(4)}"
