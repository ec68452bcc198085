"""The cold path against the real PostgreSQL: acks after commit, the database cut off."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection

from tests.support.hub import RunningHub, device_id, reading, recv_json, running_hub
from tests.support.polling import until
from tests.tcp_proxy import TcpProxy


class ResendingDevice:
    """A test device that behaves like the edge: re-sends whatever stays unacked."""

    def __init__(self, client: ClientConnection) -> None:
        self.client = client
        self.unacked: dict[int, dict[str, Any]] = {}
        self.acked: set[int] = set()
        self.ack_frames = 0

    async def send(self, seq: int) -> None:
        body = reading(seq)
        self.unacked[seq] = body
        await self.client.send(json.dumps(body))

    async def read_acks(self) -> None:
        async for message in self.client:
            frame = json.loads(message)
            assert frame["type"] == "ack", frame
            self.ack_frames += 1
            for first, last in frame["ranges"]:
                for seq in range(first, last + 1):
                    assert seq in self.unacked or seq in self.acked, f"ack of unsent {seq}"
                    self.unacked.pop(seq, None)
                    self.acked.add(seq)

    async def resend_unacked(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            pending = sorted(self.unacked)[:1000]
            if pending:
                items = [self.unacked[seq] for seq in pending]
                await self.client.send(json.dumps({"type": "batch", "items": items}))


@contextlib.asynccontextmanager
async def hub_behind_proxy(
    postgres_url: str, tmp_path: Path
) -> AsyncIterator[tuple[RunningHub, TcpProxy]]:
    target = urlsplit(postgres_url)
    async with contextlib.AsyncExitStack() as stack:
        proxy = await stack.enter_async_context(
            TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        )
        hub = await stack.enter_async_context(
            running_hub(proxy.rewrite_url(postgres_url), tmp_path)
        )
        yield hub, proxy


async def next_live_reading(watcher: ClientConnection) -> dict[str, Any]:
    """The dashboard's next reading frame, past the ``history`` notices in between.

    The device re-sends what stays unacked as a batch (as the edge does), and a
    dashboard watching the device is told when a batch is stored (docs/protocol.md,
    "Hub -> dashboard": ``history``), between the live readings.
    """
    while True:
        frame = await recv_json(watcher)
        if frame["type"] != "history":
            assert frame["type"] == "reading", frame
            return frame


async def readyz(hub: RunningHub) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.get(f"{hub.http}/readyz")


async def test_database_cut_off_mid_stream_loses_and_doubles_nothing(
    postgres_url: str, tmp_path: Path, no_errors_logged: Any
) -> None:
    async with hub_behind_proxy(postgres_url, tmp_path) as (hub, proxy):
        me = device_id()
        device = ResendingDevice(await hub.device(me, await hub.add_token(me)))
        watcher = await hub.dashboard(me)
        assert (await recv_json(watcher))["type"] == "status"
        async with asyncio.TaskGroup() as tasks:
            reader = tasks.create_task(device.read_acks(), name="test.acks")
            resender = tasks.create_task(device.resend_unacked(1.0), name="test.resend")
            total = 600
            for seq in range(200):
                await device.send(seq)
                assert (await next_live_reading(watcher))["seq"] == seq
            await until(lambda: device.acked >= set(range(200)), within=60)

            # Cut the database off: live fan-out goes on, nothing is acked.
            await proxy.cut()
            acked_before_cut = set(device.acked)
            for seq in range(200, 400):
                await device.send(seq)
                assert (await next_live_reading(watcher))["seq"] == seq
            answer = await readyz(hub)
            assert answer.status_code == 503
            assert answer.json()["reason"]
            await asyncio.sleep(2.0)
            assert device.acked == acked_before_cut, "acked while the database was cut off"

            await proxy.restore()
            for seq in range(400, total):
                await device.send(seq)
                await asyncio.sleep(0.002)
            await until(lambda: device.acked >= set(range(total)), within=120)
            await until(lambda: not device.unacked, within=30)
            reader.cancel()
            resender.cancel()
        # What the device re-sent during the cut may still be held by the writer for a
        # retry, to be stored once more (a no-op), sooner or later with the load; until
        # then its age counts as lag and /readyz says "writer lagging".
        await until(lambda: hub.hub.reader.writer_health().queue_depth == 0, within=60)
        stored = await hub.stored(me)
        seqs = [row["seq"] for row in stored]
        assert sorted(seqs) == list(range(total)), "lost or doubled readings"
        answer = await readyz(hub)
        assert answer.status_code == 200, answer.text


async def test_acks_follow_the_commit(
    postgres_url: str, tmp_path: Path, no_errors_logged: Any
) -> None:
    async with hub_behind_proxy(postgres_url, tmp_path) as (hub, proxy):
        me = device_id()
        client = await hub.device(me, await hub.add_token(me))
        await proxy.cut()
        only = json.dumps(reading(1))
        await client.send(only)
        # Storage is unreachable: no ack may come, however long we wait.
        try:
            async with asyncio.timeout(3.0):
                message = await client.recv()
        except TimeoutError:
            message = None
        assert message is None, f"acked before commit: {message!r}"
        await proxy.restore()
        # The reading was dropped or retried, never acked: re-sending gets it stored and acked.
        async with asyncio.timeout(60):
            acked: set[int] = set()
            while 1 not in acked:
                await client.send(only)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        frame = json.loads(await client.recv())
                        for first, last in frame["ranges"]:
                            acked.update(range(first, last + 1))
        stored = await hub.stored(me)
        assert [row["seq"] for row in stored] == [1]
