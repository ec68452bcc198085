"""A small real `websockets` server speaking docs/protocol.md's device door, for uplink tests.

It checks the bearer token at the handshake (HTTP 403 otherwise), "commits"
each reading to a dict keyed by seq, and acks what it committed. Knobs let a
test make it misbehave the ways docs/protocol.md allows: hold acks back, drop
readings unacked, close with a code. The real hub is used by the end-to-end
tests; this one lets a test script the hub's side exactly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from telemetry import parse_device_frame, seq_ranges
from telemetry.health import HEALTH_FRAME_PREFIX


@dataclass
class Frame:
    kind: str  # "reading", "batch" or "health"
    seqs: list[int]
    size: int


@dataclass
class WsHub:
    token: str = "secret"
    stored: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Each reading as it came on the wire, keys the wire models do not know included.
    wire: dict[int, dict[str, Any]] = field(default_factory=dict)
    frames: list[Frame] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)  # every health frame
    received: list[int] = field(default_factory=list)  # every seq, every time it arrived
    handshakes: list[float] = field(default_factory=list)  # loop time of every attempt
    connections: int = 0
    # Decide per seq whether to ack it now (default: always).
    should_ack: Callable[[int], bool] = lambda seq: True
    ack_delay_s: float = 0.0
    close_after_frames: int | None = None  # close the connection after this many frames
    close_code: int = 1011
    extra_ranges: list[tuple[int, int]] = field(default_factory=list)  # acked besides
    errors_for: set[int] = field(default_factory=set)  # answer these seqs with an error frame
    port: int = 0
    active: set[ServerConnection] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(asyncio.get_running_loop().time())
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return connection.respond(HTTPStatus.FORBIDDEN, "bad token\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.active.add(ws)
        try:
            count = 0
            async for message in ws:
                if isinstance(message, str) and message.startswith(HEALTH_FRAME_PREFIX):
                    self.frames.append(Frame("health", [], len(message.encode())))
                    self.health.append(json.loads(message))
                    continue
                parsed = parse_device_frame(message)
                seqs = [r.seq for r in parsed.readings if r.seq is not None]
                size = len(message.encode()) if isinstance(message, str) else len(message)
                self.frames.append(Frame("batch" if parsed.is_batch else "reading", seqs, size))
                self.received.extend(seqs)
                assert not parsed.rejected, parsed.rejected
                for reading in parsed.readings:
                    assert reading.seq is not None
                    self.stored.setdefault(reading.seq, reading.to_wire())
                document = json.loads(message)
                for item in document["items"] if parsed.is_batch else [document]:
                    self.wire.setdefault(item["seq"], item)
                if self.ack_delay_s:
                    await asyncio.sleep(self.ack_delay_s)
                for seq in sorted(self.errors_for & set(seqs)):
                    await ws.send(json.dumps({"type": "error", "seq": seq, "reason": "test"}))
                acked = [seq for seq in seqs if self.should_ack(seq)]
                ranges = seq_ranges(acked) + self.extra_ranges
                if ranges:
                    await ws.send(json.dumps({"type": "ack", "ranges": ranges}))
                count += 1
                if self.close_after_frames is not None and count >= self.close_after_frames:
                    await ws.close(self.close_code, "test")
                    return
        finally:
            self.active.discard(ws)


@asynccontextmanager
async def running(hub: WsHub) -> AsyncIterator[WsHub]:
    server: Server
    async with serve(
        hub.handler, "127.0.0.1", 0, process_request=hub.process_request, max_size=2**20
    ) as server:
        hub.port = server.sockets[0].getsockname()[1]
        yield hub
