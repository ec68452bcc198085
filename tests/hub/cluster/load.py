"""Devices and dashboards that move between hubs as a load balancer would send them.

A ``Publisher`` streams numbered readings to one of several hubs; when its
socket ends it reconnects to the next hub that answers and sends again
everything not acked, like the edge agent (edge/uplink.py) does with one hub.
A ``Watcher`` is a dashboard that does the same. Both only record: the tests
assert.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests.support.hub import close_client, reading


@dataclass
class Publisher:
    device_id: str
    token: str
    urls: list[str]  # ws base URLs of the hubs, tried in turn from ``start``
    start: int = 0
    rate_hz: float = 50.0
    sent: set[int] = field(default_factory=set)
    acked: set[int] = field(default_factory=set)
    connects: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, hub index)
    acks_at: list[float] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    next_seq: int = 1
    sending: bool = True

    def unacked(self) -> set[int]:
        return self.sent - self.acked

    async def run(self, stop: asyncio.Event) -> None:
        index = self.start
        while not stop.is_set():
            url = self.urls[index % len(self.urls)]
            try:
                client = await connect(
                    f"{url}/ws/device/{self.device_id}",
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=3,
                )
            except (OSError, InvalidHandshake, InvalidStatus, TimeoutError):
                index += 1
                await asyncio.sleep(0.05)
                continue
            self.connects.append((time.monotonic(), index % len(self.urls)))
            try:
                await self._session(client, stop)
            except ConnectionClosed as closed:
                self.close_codes.append(closed.rcvd.code if closed.rcvd else None)
                index += 1
            finally:
                await close_client(client, within=2)

    async def _session(self, client: ClientConnection, stop: asyncio.Event) -> None:
        async def receive() -> None:
            async for message in client:
                frame = json.loads(message)
                if frame.get("type") == "ack":
                    for first, last in frame["ranges"]:
                        self.acked.update(range(first, last + 1))
                    self.acks_at.append(time.monotonic())

        receiver = asyncio.create_task(receive())
        try:
            for seq in sorted(self.unacked()):  # what the last socket left unacked
                await client.send(json.dumps(reading(seq)))
            while not stop.is_set():
                if self.sending:
                    seq = self.next_seq
                    self.next_seq += 1
                    self.sent.add(seq)
                    await client.send(json.dumps(reading(seq)))
                elif not self.unacked():
                    await asyncio.wait({receiver}, timeout=0.1)
                await asyncio.sleep(1 / self.rate_hz)
                if receiver.done():
                    receiver.result()
                    raise ConnectionClosed(None, None)
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await receiver


@dataclass
class Watcher:
    device_id: str
    urls: list[str]
    start: int = 0
    seqs: list[int] = field(default_factory=list)
    statuses: list[bool] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sent_at: Callable[[int], float | None] = lambda seq: None
    connects: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        index = self.start
        while not stop.is_set():
            url = self.urls[index % len(self.urls)]
            try:
                async with connect(f"{url}/ws/dashboard/{self.device_id}", open_timeout=3) as ws:
                    self.connects += 1
                    while not stop.is_set():
                        try:
                            message = await asyncio.wait_for(ws.recv(), 0.5)
                        except TimeoutError:
                            continue
                        self._record(json.loads(message))
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                index += 1
                await asyncio.sleep(0.05)

    def _record(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "status":
            self.statuses.append(bool(frame["online"]))
        elif frame["type"] == "reading" and "seq" in frame:
            self.seqs.append(frame["seq"])
            sent = self.sent_at(frame["seq"])
            if sent is not None:
                self.latencies.append(time.monotonic() - sent)
