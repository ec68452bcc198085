"""Live fan-out to one dashboard: a bounded queue and its own sender task.

The hot path (a device's receive loop) only ever calls ``DashboardFeed.offer``,
which is synchronous: it never awaits a dashboard's socket (docs/architecture.md,
"Guarantees": hot path isolation). Each feed's sender task moves frames from its queue
to its socket.

What "bounded" counts. uvicorn's WebSocket protocols write into the asyncio
transport; what the peer has not read piles up in the transport's write buffer.
In the uvicorn version we pin (0.54, ``ws="websockets-sansio"``, see
hub/server.py) ``send()`` waits while the transport is paused above its high
water mark (64 KiB), so at most one frame sits beyond that mark; older uvicorn
implementations did not wait at all. We do not rely on either: the bound is
checked against our queued bytes *plus* the transport's
``get_write_buffer_size()``, which ``hub.asgi_transport`` makes reachable from
the ASGI side. When a server does not expose its transport, the queue's own
bound still holds and the server's flow control covers the rest.

Overflow policy (docs/protocol.md, "Hub -> dashboard"): a dashboard that falls behind
loses its oldest pending frames (counted); one that stays behind for
``stall_s`` seconds is closed with 1013.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.websockets import WebSocketDisconnect

from hub.metrics import FeedCounters
from hub.sockets import PeerGone, SocketLike, close_quietly, send_text_or_raise
from telemetry import CloseCode

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedPolicy:
    """Bounds of one dashboard's pending frames (hub/app.py sets them)."""

    max_frames: int = 1000
    max_bytes: int = 1024 * 1024  # queued + in the transport's write buffer
    stall_s: float = 5.0  # behind this long, without catching up: closed with 1013
    close_timeout_s: float = 5.0


class FeedState(enum.Enum):
    OPEN = "open"
    TOO_SLOW = "too_slow"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PushResult:
    dropped: int  # oldest frames dropped to make room
    too_slow: bool  # behind for stall_s: close with 1013


@dataclass(slots=True)
class FeedQueue:
    """Pure bookkeeping of one dashboard's pending frames, on plain values."""

    policy: FeedPolicy
    frames: deque[str] = field(default_factory=deque)
    queued_bytes: int = 0
    behind_since: float | None = None  # first drop since the queue was last empty

    def push(self, frame: str, now: float, in_transport: int = 0) -> PushResult:
        self.frames.append(frame)
        self.queued_bytes += len(frame)
        dropped = 0
        # Keep the newest frame: it is what the dashboard most needs once it catches up.
        while len(self.frames) > 1 and (
            len(self.frames) > self.policy.max_frames
            or self.queued_bytes + in_transport > self.policy.max_bytes
        ):
            self.queued_bytes -= len(self.frames.popleft())
            dropped += 1
        if dropped and self.behind_since is None:
            self.behind_since = now
        too_slow = self.behind_since is not None and now - self.behind_since >= self.policy.stall_s
        return PushResult(dropped, too_slow)

    def pop(self) -> str | None:
        if not self.frames:
            self.behind_since = None
            return None
        frame = self.frames.popleft()
        self.queued_bytes -= len(frame)
        if not self.frames:
            # Caught up: whatever was dropped before, the dashboard keeps pace now.
            self.behind_since = None
        return frame

    def __len__(self) -> int:
        return len(self.frames)


class DashboardFeed:
    """One dashboard connection's queue and sender task."""

    def __init__(
        self,
        socket: SocketLike,
        device_id: str,
        policy: FeedPolicy,
        counters: FeedCounters,
        *,
        transport_buffered: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.socket = socket
        self.device_id = device_id
        self.queue = FeedQueue(policy)
        self.state = FeedState.OPEN
        self._policy = policy
        self._counters = counters
        self._transport_buffered = transport_buffered
        self._clock = clock or asyncio.get_running_loop().time
        self._wake = asyncio.Event()
        self._close_code: CloseCode | None = None
        self._close_requested = asyncio.Event()
        self.finished = asyncio.Event()  # run() is over: the socket is closed or gone

    def offer(self, frame: str) -> None:
        """Queue a frame; never awaits (the hot path calls this)."""
        if self.state is not FeedState.OPEN:
            return
        result = self.queue.push(frame, self._clock(), self._transport_buffered())
        if result.dropped:
            self._counters.dropped += result.dropped
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "dashboard of %s: dropped %d old frames", self.device_id, result.dropped
                )
        if result.too_slow:
            self.state = FeedState.TOO_SLOW
            self._counters.closed_too_slow += 1
            logger.warning(
                "dashboard of %s stayed behind for %.1f s: closing it with 1013",
                self.device_id,
                self._policy.stall_s,
            )
            self.request_close(CloseCode.TRY_AGAIN_LATER)
            return
        self._wake.set()

    def request_close(self, code: CloseCode) -> None:
        """Ask the feed to close its socket with ``code`` (from any task, never awaits)."""
        if self._close_code is None:
            self._close_code = code
        self._close_requested.set()

    @property
    def pending(self) -> int:
        return len(self.queue)

    async def run(self) -> None:
        """Send until the peer leaves or a close is requested; then close the socket."""
        try:
            await self._run()
        finally:
            self.state = FeedState.CLOSED
            self.finished.set()

    async def _run(self) -> None:
        sender = asyncio.create_task(self._send_loop(), name=f"dashboard[{self.device_id}].send")
        receiver = asyncio.create_task(
            self._receive_loop(), name=f"dashboard[{self.device_id}].receive"
        )
        closer = asyncio.create_task(
            self._close_requested.wait(), name=f"dashboard[{self.device_id}].close"
        )
        tasks = {sender, receiver, closer}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.state = FeedState.CLOSED
        for task in done:
            error = None if task is closer or task.cancelled() else task.exception()
            if isinstance(error, PeerGone | WebSocketDisconnect):
                logger.debug("dashboard of %s left: %r", self.device_id, error)
            elif error is not None:
                raise error  # a bug, not a peer leaving: let uvicorn log it
        if receiver in done:
            return  # the peer is gone: nothing left to close
        code = self._close_code or CloseCode.NORMAL
        await close_quietly(self.socket, code, within=self._policy.close_timeout_s)

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (frame := self.queue.pop()) is not None:
                await send_text_or_raise(self.socket, frame)
                self._counters.sent += 1

    async def _receive_loop(self) -> None:
        # docs/protocol.md: anything a dashboard sends is ignored. We still read, so
        # uvicorn keeps reading the socket and we see the peer leave.
        while True:
            message = await self.socket.receive()
            if message["type"] == "websocket.disconnect":
                return
