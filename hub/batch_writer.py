"""The cold path: one bounded queue into batched, acked commits (docs/architecture.md).

The device door calls :meth:`BatchWriter.offer` for every valid reading. It
never blocks and never awaits: it appends to a bounded queue, or refuses
(returns False) when the queue is full, in which case that reading is simply
not acked and the edge sends it again later (docs/protocol.md, "Hub -> device":
"the hub may drop readings it has not acked").

One task (``{name}.flush_loop``) takes up to ``max_batch`` rows at a time, as
soon as that many are queued or ``max_delay_s`` after the oldest one arrived,
whichever comes first, and hands them to a commit task (``{name}.commit[n]``,
at most ``max_concurrent_batches`` at once, in the loop's TaskGroup), which
commits them through ``Storage.write_prepared`` (one transaction, idempotent on
(device_id, ts)). Only after the commit does it tell each connection's
:class:`AckSink` which of its seqs are stored: "the hub never acks a reading
before its commit". Two batches in flight overlap one batch's transfer with
the database's insert and fsync of the other; acks may then come
in another order than the offers, which ranges allow (docs/protocol.md).

Each reading is turned into its storage row (``Storage.prepare``) when it is
offered: the queue then holds plain tuples rather than validated models (far
fewer objects for the garbage collector to walk), and a commit has no
conversion left to do on the event loop (docs/benchmarks.md, "Hub").

When storage is unavailable a batch is kept and retried after a capped,
jittered exponential delay (logged with the delay), while the queue keeps
accepting until it is full; when storage returns, the held batches are
committed and acked first. Memory is bounded by ``max_queue`` queued rows plus
``max_concurrent_batches * max_batch`` rows in flight. Overflow policy: refuse
new rows (never drop queued ones, which may be a connection's oldest unacked
seqs).

Fencing (several hubs, hub/cluster/lease.py): a writer made with
``fencing=True`` asks each batch's sinks, just before the commit, whether
their connection still holds its device (``Fenceable.fenced``); rows of a
fenced one are neither committed nor acked (the device sends them again to its
new hub), and the device's replies ask again before they ack.

A batch that storage rejects for any other reason (a ``StorageError`` that is not
``StorageUnavailable``: a bug, not an outage) is logged and dropped unacked, so
one poisoned batch cannot stop the hub; its readings come back from the edge.

:meth:`BatchWriter.health` feeds ``/readyz``; :meth:`BatchWriter.stats` feeds ``/metrics``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import random
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Final, NamedTuple, Protocol, Self, runtime_checkable

from hub.storage.base import (
    PreparedRow,
    Storage,
    StorageError,
    StorageUnavailable,
    StoredReading,
)
from telemetry.backoff import Backoff, BackoffPolicy

logger = logging.getLogger(__name__)

# A few thousand rows: each batch costs a handful of round trips and one ack
# frame per device in it, so larger batches carry more readings per ack and per
# round trip when the hub is busy (docs/benchmarks.md, "Hub").
DEFAULT_MAX_BATCH: Final = 5000
DEFAULT_MAX_DELAY_S: Final = 0.2
# 50,000 rows: ten seconds of the target of 5,000 stored readings/s (docs/benchmarks.md,
# "Targets") held through a database blip, or about two seconds of
# what the hub ingests at full load here (docs/benchmarks.md, "Hub"); 50-200 MB
# (a row holds its reading's values, and `extra` as JSON text).
DEFAULT_MAX_QUEUE: Final = 50_000


class AckSink(Protocol):
    """Who hears about committed seqs: one device connection (its DeviceReplies)."""

    def committed(self, seqs: list[int]) -> None:
        """Called on the event loop after a commit, once per batch, with this sink's seqs.

        Must not block and should not raise (an exception is logged and ignored).
        """


@runtime_checkable
class Fenceable(Protocol):
    """A sink that can tell it lost its device to another hub (hub/cluster/lease.py)."""

    def fenced(self) -> bool: ...


def is_fenced(sink: object) -> bool:
    return isinstance(sink, Fenceable) and sink.fenced()


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """For ``/readyz``: ready unless storage is down, the queue is full or lag is too high."""

    ready: bool
    reason: str  # "ok", or what is wrong, for the 503 body
    queue_depth: int  # rows not yet committed: queued plus the batch in flight
    queue_capacity: int
    in_flight: int  # rows in the batches being committed (or held for a retry)
    lag_s: float  # age of the oldest uncommitted row; 0.0 when there is none
    storage_up: bool  # outcome of the last commit or probe
    last_error: str  # the last storage error, "" when there has been none


@dataclass(frozen=True, slots=True)
class WriterStats:
    """For ``/metrics``: ``*_total`` are counters, the rest gauges."""

    rows_committed_total: int
    batches_committed_total: int
    commit_seconds_total: float
    acked_seqs_total: int
    rejected_queue_full_total: int
    rejected_stopped_total: int
    storage_errors_total: int  # failed commit attempts (each retry counts)
    batches_failed_total: int  # refused for good (not an outage): left unacked
    rows_failed_total: int
    rows_fenced_total: int  # not committed: their connection lost its device to another hub
    last_batch_size: int
    average_batch_size: float
    queue_depth: int


@dataclass(slots=True)
class WriterCounters:
    """The counts in :meth:`BatchWriter.stats`; created by ``HubMetrics`` (hub/metrics.py)."""

    rows_committed: int = 0
    batches_committed: int = 0
    commit_seconds: float = 0.0
    acked_seqs: int = 0
    rejected_full: int = 0
    rejected_stopped: int = 0
    storage_errors: int = 0  # failed commit attempts (each retry counts)
    batches_failed: int = 0
    rows_failed: int = 0
    rows_fenced: int = 0
    last_batch_size: int = 0


class _Item(NamedTuple):
    row: PreparedRow  # Storage.prepare(reading): plain values, no models
    seq: int | None
    sink: AckSink | None
    queued_at: float  # time.monotonic()


class BatchWriter:
    """Owns one named task; use ``async with BatchWriter(storage) as writer``."""

    def __init__(
        self,
        storage: Storage,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        max_queue: int = DEFAULT_MAX_QUEUE,
        flush_timeout_s: float = 5.0,
        retry_base_s: float = 0.1,
        retry_cap_s: float = 5.0,
        ready_max_lag_s: float = 5.0,
        probe_interval_s: float = 5.0,
        max_concurrent_batches: int = 2,
        name: str = "hub.batch_writer",
        rng: random.Random | None = None,
        fencing: bool = False,
        counters: WriterCounters | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_concurrent_batches < 1:
            raise ValueError("max_batch, max_queue and max_concurrent_batches must be >= 1")
        self._storage = storage
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self._flush_timeout_s = flush_timeout_s
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._ready_max_lag_s = ready_max_lag_s
        self._probe_interval_s = probe_interval_s
        self._name = name
        self._rng = rng or random.Random()
        self._queue: collections.deque[_Item] = collections.deque()
        # Batches being committed (or held for a retry), by batch number.
        self._in_flight: dict[int, list[_Item]] = {}
        self._batch_numbers = itertools.count(1)
        # Two batches in flight let the next batch be converted and sent while
        # the database inserts and fsyncs the previous one (bench/storage_writer.py).
        self._slots = asyncio.Semaphore(max_concurrent_batches)
        self._wakeup = asyncio.Event()
        self._accepting = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._storage_up = True
        self._last_error = ""
        self._counts = WriterCounters() if counters is None else counters
        self._fencing = fencing

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._accepting = True
        self._task = asyncio.create_task(self._run(), name=f"{self._name}.flush_loop")
        self._task.add_done_callback(self._loop_ended)
        return self

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # A bug, not an outage: refuse rows from now on (they stay unacked and
            # come back from the edges) instead of queueing them for nobody.
            self._accepting = False
            logger.error("the writer's flush loop crashed", exc_info=task.exception())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop accepting, commit (and ack) what is queued within ``flush_timeout_s``, stop."""
        self._accepting = False
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=self._flush_timeout_s)
        if not done:
            left = len(self._queue) + self._in_flight_rows()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            logger.warning(
                "writer stopped with %d readings uncommitted after %.1f s; "
                "they were never acked, so their edges will send them again",
                left,
                self._flush_timeout_s,
            )
            return
        task.result()  # a crash of the loop is a bug: let it surface

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every row offered so far is committed (or failed); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._queue or self._in_flight:
            if loop.time() >= deadline or self._task is None or self._task.done():
                return False
            await asyncio.sleep(0.01)
        return True

    # -- the hot path's side ---------------------------------------------------------

    def offer(self, row: StoredReading, sink: AckSink | None) -> bool:
        """Queue a row for storage; False (and counted) when the queue is full or stopping.

        Never blocks. ``sink`` hears about ``row.reading.seq`` after the commit;
        pass None for a reading without seq (it is stored, never acked).
        """
        if not self._accepting:
            self._counts.rejected_stopped += 1
            return False
        queue = self._queue
        if len(queue) >= self.max_queue:
            self._counts.rejected_full += 1
            return False
        queue.append(_Item(self._storage.prepare(row), row.reading.seq, sink, time.monotonic()))
        # Wake the loop for the first row (to start the max_delay clock) and for
        # a full batch; every other append needs no wake-up.
        if len(queue) == 1 or len(queue) >= self.max_batch:
            self._wakeup.set()
        return True

    # -- the flush loop -----------------------------------------------------------------

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as commits:
            while True:
                if not self._queue:
                    if self._stopping:
                        return  # the TaskGroup waits for the commits in flight
                    await self._wait_idle()
                    continue
                await self._wait_for_batch()
                await self._slots.acquire()
                count = min(self.max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(count)]
                number = next(self._batch_numbers)
                self._in_flight[number] = batch
                commits.create_task(
                    self._commit_and_ack(number, batch), name=f"{self._name}.commit[{number}]"
                )

    async def _commit_and_ack(self, number: int, batch: list[_Item]) -> None:
        try:
            if self._fencing:
                batch = self._unfenced(batch)
            if batch and await self._commit(batch):
                self._ack(batch)
        finally:
            del self._in_flight[number]
            self._slots.release()

    async def _wait_idle(self) -> None:
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), self._probe_interval_s)
        except TimeoutError:
            await self._probe()

    async def _probe(self) -> None:
        """Keep ``storage_up`` true to life while no batch tells us (``/readyz`` reads it)."""
        try:
            await self._storage.check()
        except StorageError as err:
            if self._storage_up:
                logger.warning("storage check failed while idle: %s", err)
            self._storage_up = False
            self._last_error = str(err)
        else:
            self._storage_up = True

    async def _wait_for_batch(self) -> None:
        deadline = self._queue[0].queued_at + self.max_delay_s
        while len(self._queue) < self.max_batch and not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _commit(self, batch: list[_Item]) -> bool:
        """Commit the batch, retrying while storage is unavailable; False if refused for good."""
        rows = [item.row for item in batch]
        retry = Backoff(BackoffPolicy(self._retry_base_s, self._retry_cap_s), self._rng)
        while True:
            started = time.perf_counter()
            try:
                await self._storage.write_prepared(rows)
            except StorageUnavailable as err:
                self._counts.storage_errors += 1
                self._storage_up = False
                self._last_error = str(err)
                delay = retry.next_delay()
                logger.warning(
                    "storage unavailable (%s): holding %d readings, retry %d in %.2f s",
                    err,
                    len(rows),
                    retry.failures,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            except StorageError as err:
                self._refused(rows, err)
                return False
            except Exception as err:  # a bug on one batch must not stop the cold path
                logger.exception("writing a batch failed unexpectedly")
                self._refused(rows, err)
                return False
            elapsed = time.perf_counter() - started
            if retry.failures:
                logger.info("storage is back: committed %d held readings", len(rows))
            self._storage_up = True
            self._counts.rows_committed += len(rows)
            self._counts.batches_committed += 1
            self._counts.commit_seconds += elapsed
            self._counts.last_batch_size = len(rows)
            return True

    def _unfenced(self, batch: list[_Item]) -> list[_Item]:
        """The batch less the rows of connections that lost their device (module docstring)."""
        verdicts: dict[int, bool] = {}
        kept: list[_Item] = []
        for item in batch:
            sink = item.sink
            if sink is not None:
                fenced = verdicts.get(id(sink))
                if fenced is None:
                    fenced = verdicts[id(sink)] = is_fenced(sink)
                if fenced:
                    continue
            kept.append(item)
        self._counts.rows_fenced += len(batch) - len(kept)
        return kept

    def _refused(self, rows: list[PreparedRow], err: Exception) -> None:
        self._counts.storage_errors += 1
        self._counts.batches_failed += 1
        self._counts.rows_failed += len(rows)
        self._last_error = f"{type(err).__name__}: {err}"
        logger.error(
            "storage refused a batch of %d readings (%s); left unacked for re-sending",
            len(rows),
            err,
        )

    def _ack(self, batch: list[_Item]) -> None:
        # One call per sink per batch; keyed by identity, sinks need not be hashable.
        groups: dict[int, tuple[AckSink, list[int]]] = {}
        for item in batch:
            seq = item.seq
            if item.sink is None or seq is None:
                continue
            group = groups.get(id(item.sink))
            if group is None:
                groups[id(item.sink)] = (item.sink, [seq])
            else:
                group[1].append(seq)
        for sink, seqs in groups.values():
            self._counts.acked_seqs += len(seqs)
            try:
                sink.committed(seqs)
            except Exception:  # one faulty sink must not cost the others their acks
                logger.exception("an ack sink failed on %d committed seqs", len(seqs))

    # -- observability ------------------------------------------------------------------

    def health(self) -> WriterHealth:
        queued = len(self._queue)
        in_flight = self._in_flight_rows()
        oldest = [batch[0].queued_at for batch in self._in_flight.values()]
        if self._queue:
            oldest.append(self._queue[0].queued_at)
        lag = max(0.0, time.monotonic() - min(oldest)) if oldest else 0.0
        task = self._task
        if task is None or task.done():
            reason = "writer is not running"
        elif not self._storage_up:
            reason = f"storage unavailable: {self._last_error}"
        elif queued >= self.max_queue:
            reason = f"writer queue full ({queued} readings)"
        elif lag > self._ready_max_lag_s:
            reason = f"writer lagging: oldest uncommitted reading is {lag:.1f} s old"
        else:
            reason = "ok"
        return WriterHealth(
            ready=reason == "ok",
            reason=reason,
            queue_depth=queued + in_flight,
            queue_capacity=self.max_queue,
            in_flight=in_flight,
            lag_s=lag,
            storage_up=self._storage_up,
            last_error=self._last_error,
        )

    def _in_flight_rows(self) -> int:
        return sum(len(batch) for batch in self._in_flight.values())

    def stats(self) -> WriterStats:
        batches = self._counts.batches_committed
        return WriterStats(
            rows_committed_total=self._counts.rows_committed,
            batches_committed_total=batches,
            commit_seconds_total=self._counts.commit_seconds,
            acked_seqs_total=self._counts.acked_seqs,
            rejected_queue_full_total=self._counts.rejected_full,
            rejected_stopped_total=self._counts.rejected_stopped,
            storage_errors_total=self._counts.storage_errors,
            batches_failed_total=self._counts.batches_failed,
            rows_failed_total=self._counts.rows_failed,
            rows_fenced_total=self._counts.rows_fenced,
            last_batch_size=self._counts.last_batch_size,
            average_batch_size=self._counts.rows_committed / batches if batches else 0.0,
            queue_depth=len(self._queue) + self._in_flight_rows(),
        )
