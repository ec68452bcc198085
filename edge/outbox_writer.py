"""The outbox writer: groups readings into a few transactions per second (SD cards wear).

The sampler hands readings over with :meth:`OutboxWriter.put`, which never
blocks; the writer commits what has gathered every ``flush_interval_s``, in
order, then offers the committed readings to the uplink (only committed
readings go on the wire: a seq must never be sent twice with different data).

A :class:`Restamp` (the clock became trusted, edge/clock.py) travels in the
same queue, so it is applied after the held readings before it were written.

Bounds: at most ``max_pending`` readings wait in memory (the outbox being
unwritable, e.g. a full or failing card). Beyond it the oldest waiting reading
is dropped, counted and logged. A failed write is logged and retried with
backoff; nothing pending is lost by it.

Cancelling the writer never cuts a write in half: each flush runs in a task of
its own, shielded. A write whose outcome were unknown would be written again
by the final flush, under new seqs (a doubled reading), or, worse, left inside
an open transaction. The cancelled writer ends at once; the write it started
finishes on its own, and the final :meth:`OutboxWriter.flush` (one flush at a
time, in order) waits for it before writing the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from edge.clock import TimeSource
from edge.outbox import NewReading, Outbox, OutboxError, Stored
from telemetry.backoff import Backoff, BackoffPolicy

__all__ = ["OutboxWriter", "Restamp"]

logger = logging.getLogger(__name__)

RETRY: Final = BackoffPolicy(0.5, 30.0)


@dataclass(frozen=True, slots=True)
class Restamp:
    """Give held readings their time: ``wall = mono + offset``, from the clock ``source``."""

    offset: float
    source: TimeSource = TimeSource.NTP


class OutboxWriter:
    def __init__(
        self,
        outbox: Outbox,
        *,
        boot: str,
        on_committed: Callable[[Sequence[Stored]], None] = lambda stored: None,
        on_restamped: Callable[[], None] = lambda: None,
        flush_interval_s: float = 0.5,
        max_pending: int = 10_000,
    ) -> None:
        self.outbox = outbox
        self.boot = boot
        self._on_committed = on_committed
        self._on_restamped = on_restamped
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self._pending: deque[NewReading | Restamp] = deque()
        self._readings_pending = 0
        self._writing = 0  # items at the head of the queue in a write right now: never dropped
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one flush at a time: a batch is taken once
        self._write: asyncio.Task[None] | None = None  # the last flush run() started
        self._retry = Backoff(RETRY)
        self.dropped = 0
        self.commits = 0

    @property
    def pending(self) -> int:
        return self._readings_pending

    def put(self, item: NewReading | Restamp) -> None:
        """Queue a reading (or a restamp); never blocks."""
        if isinstance(item, NewReading):
            if self._readings_pending >= self.max_pending:
                self._drop_oldest()
            self._readings_pending += 1
        self._pending.append(item)
        self._wake.set()

    def _drop_oldest(self) -> None:
        for index, item in enumerate(self._pending):
            if index >= self._writing and isinstance(item, NewReading):
                del self._pending[index]
                self._readings_pending -= 1
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    logger.error(
                        "the buffer cannot be written: %d readings dropped from memory so far",
                        self.dropped,
                        extra={"count": self.dropped},
                    )
                return

    async def run(self) -> None:
        """Write until cancelled; call :meth:`flush` after cancelling to write the rest."""
        while True:
            await self._wake.wait()
            # Let a few readings gather: one transaction for all of them.
            await asyncio.sleep(self.flush_interval_s)
            try:
                # shield(): a cancellation stops the writer, not the write (see above).
                self._write = asyncio.create_task(self.flush(), name="outbox.writer.flush")
                await asyncio.shield(self._write)
            except OutboxError as err:
                delay = self._retry.next_delay()
                logger.error(
                    "writing the buffer failed: %s; retrying in %.1f s",
                    err,
                    delay,
                    extra={"error": str(err), "delay_s": round(delay, 3), "pending": self.pending},
                )
                await asyncio.sleep(delay)
            else:
                self._retry.reset()

    async def flush(self) -> None:
        """Write everything pending now, in order. Raises :class:`OutboxError`, keeping it.

        Waits for a write still under way (one the cancelled :meth:`run` left) first.
        """
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        self._wake.clear()
        while self._pending:
            head = self._pending[0]
            if isinstance(head, Restamp):
                await self.outbox.restamp(
                    boot=self.boot, offset=head.offset, clock=head.source.value
                )
                self._pending.popleft()
                self._on_restamped()
                continue
            batch: list[NewReading] = []
            for item in self._pending:
                if not isinstance(item, NewReading):
                    break
                batch.append(item)
            self._writing = len(batch)
            try:
                stored = await self.outbox.append(batch, boot=self.boot)
            finally:
                self._writing = 0
            for _ in batch:
                self._pending.popleft()
            self._readings_pending -= len(batch)
            self.commits += 1
            self._on_committed(stored)
