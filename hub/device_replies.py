"""What the hub sends back to one device: acks and errors (docs/protocol.md, "Hub -> device").

``DeviceReplies`` is the ``AckSink`` the device door hands to
``BatchWriter.offer`` with each seq-carrying reading. The writer calls
``committed(seqs)`` on the event loop after each commit; ``DeviceReplies`` merges those
seqs with the seqs of readings rejected as invalid (an ack means "committed or
rejected as invalid") and its own sender task sends them as few
``{"type": "ack", "ranges": [[a, b], ...]}`` frames as it can. Nothing is ever
acked before ``committed`` names it, so nothing is acked before its commit.

Several hubs: with a ``fence`` (hub/cluster/link.py), commits are not acked
once the connection lost its device to another hub (hub/cluster/lease.py),
nor are they committed at all (hub/batch_writer.py asks ``fenced`` first).

A closed replies object (its socket ended, or was replaced by the ghost protocol)
drops whatever is committed later, silently: the edge re-sends what stays
unacked and storage is idempotent, so a lost ack costs a duplicate send, never
a reading.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from hub.metrics import HubCounters
from hub.sockets import SocketLike, send_text_or_raise
from telemetry import seq_ranges

logger = logging.getLogger(__name__)

MAX_PENDING_ERRORS = 256  # beyond this, error frames are dropped; their seqs are still acked


def ack_frame(ranges: list[tuple[int, int]]) -> str:
    """``{"type":"ack","ranges":[[a,b],...]}``, as ``json.dumps`` would write it compactly.

    Built by formatting, not by ``json.dumps``: one frame per device per commit
    is on the hub's busiest path, and the ranges are only ints.
    """
    inner = "],[".join(f"{first},{last}" for first, last in ranges)
    return f'{{"type":"ack","ranges":[[{inner}]]}}'


@dataclass(slots=True)
class AckBook:
    """Pure bookkeeping: seqs waiting to be acked, error frames waiting to be sent."""

    seqs: set[int] = field(default_factory=set)
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_ERRORS))

    def add_committed(self, seqs: list[int]) -> None:
        self.seqs.update(seqs)

    def add_rejected(self, seq: int, reason: str) -> None:
        self.errors.append(
            json.dumps({"type": "error", "seq": seq, "reason": reason}, separators=(",", ":"))
        )
        self.seqs.add(seq)

    def take(self) -> tuple[list[str], int]:
        """Frames to send now (errors first, then one ack), and how many seqs they ack."""
        frames = list(self.errors)
        self.errors.clear()
        count = len(self.seqs)
        if self.seqs:
            frames.append(ack_frame(seq_ranges(self.seqs)))
            self.seqs.clear()
        return frames, count

    def __bool__(self) -> bool:
        return bool(self.seqs or self.errors)


class Fence(Protocol):
    """Whether a connection lost its device to another hub (hub/cluster/link.py)."""

    def fenced(self) -> bool: ...

    def acks_dropped(self, count: int) -> None: ...


class DeviceReplies:
    """One device connection's AckSink and sender."""

    def __init__(self, socket: SocketLike, device_id: str, counters: HubCounters) -> None:
        self.socket = socket
        self.device_id = device_id
        self._counters = counters
        self._book = AckBook()
        self._wake = asyncio.Event()
        self._closed = False
        self.fence: Fence | None = None

    def fenced(self) -> bool:
        """hub/batch_writer.py's ``Fenceable``: never, for a single hub."""
        return self.fence is not None and self.fence.fenced()

    # AckSink (hub/batch_writer.py): called on the loop after each commit.
    def committed(self, seqs: list[int]) -> None:
        if self._closed or not seqs:
            return
        if self.fence is not None and self.fence.fenced():
            self.fence.acks_dropped(len(seqs))
            return
        self._book.add_committed(seqs)
        self._wake.set()

    def rejected(self, seq: int, reason: str) -> None:
        """A reading with this seq was invalid: tell the device, and ack it."""
        if self._closed:
            return
        self._book.add_rejected(seq, reason)
        self._wake.set()

    def close(self) -> None:
        """Stop sending; later commits are dropped silently."""
        self._closed = True
        self._book = AckBook()
        self._wake.set()

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self) -> None:
        """Send pending acks and errors until closed; a vanished peer raises ``PeerGone``."""
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            frames, acked = self._book.take()
            for frame in frames:
                await send_text_or_raise(self.socket, frame)
            if acked:
                self._counters.acks_sent += 1
                self._counters.seqs_acked += acked
            self._counters.errors_sent += len(frames) - (1 if acked else 0)
