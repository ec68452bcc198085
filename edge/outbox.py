"""The outbox: readings buffered on the edge until the hub acks them (docs/architecture.md).

One SQLite file in WAL mode, reached through aiosqlite:

- ``seq`` is allocated in the transaction that stores the reading, from a
  counter kept in ``meta`` (not from ``max(seq)``), so it keeps increasing, with
  no gap, across restarts, SIGKILLs and a buffer emptied by acks
  (docs/protocol.md, ``seq``: "strictly increasing over the device's life").
- Writes come in batches, one transaction each (an SD card wears per write):
  the caller groups readings; :class:`Outbox` never commits one at a time.
- ``synchronous=FULL``: a committed batch survives a power cut, not only a
  SIGKILL. With a few commits per second, the cost is a few fsyncs per second.
- The file is bounded by ``max_bytes``. When a batch pushes it over, the oldest
  readings are dropped in the same transaction down to a low-water mark; the
  number is added to a persisted counter and logged (never silently).
- A reading taken while the wall clock was untrusted (edge/clock.py) is stored
  *held*: no ``ts`` yet, its monotonic time and the boot it was taken in.
  :meth:`Outbox.restamp` gives held readings of this boot their time;
  held readings of an earlier boot can never be stamped (their monotonic clock
  is gone) and :meth:`Outbox.drop_unstampable` drops and counts them.
- Only stamped readings are offered to the uplink (:meth:`Outbox.page`).
- A reading the hub keeps failing on (edge/uplink.py: closed with 1011 three
  times with it alone in flight) is *parked*: moved, in one transaction, to the
  ``parked`` table, so it no longer holds the backlog but is not lost either.
  :meth:`Outbox.unpark` moves every parked reading back into the outbox; the
  agent does so at each start, so a hub that was fixed and an agent restarted
  get them again (the hub stores a re-sent reading once).
- The energy integrator's state (docs/protocol.md, "Energy") after the last
  stored reading is written in the transaction that stores it (one row,
  ``energy_state``), so a restarted agent goes on from exactly the readings
  it kept: :meth:`Outbox.energy_record`. So are the site's running energy
  totals after it (edge/energy_totals.py, one row, ``energy_totals``): what
  :attr:`Outbox.committed_totals` says has been committed, so a total published
  from it never goes down, across restarts too.
- Every transaction ends, committed or rolled back, even when the task running
  it is cancelled (:meth:`Outbox._transaction`). aiosqlite runs each statement
  in its own thread: cancelling an ``await`` stops the wait, not the statement,
  so a BEGIN whose await was cancelled still opens a transaction, and the next
  BEGIN on the connection would fail ("cannot start a transaction within a
  transaction").

Exceptions::

    OutboxError          the buffer file cannot be opened or used (path, reason)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import aiosqlite

from edge.energy_totals import EnergyTotals
from telemetry import seq_ranges
from telemetry.energy_increments import MAX_SPAN_S

__all__ = [
    "DeviceRecord",
    "EnergyRecord",
    "NewReading",
    "Outbox",
    "OutboxError",
    "OutboxStatus",
    "Stored",
    "read_status",
    "rows_to_drop",
    "ts_us_of",
    "wire_ts",
]

logger = logging.getLogger(__name__)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# After a drop, the file is brought down to this share of max_bytes, so a full
# buffer drops a chunk now and then rather than a few rows on every write.
LOW_WATER: Final = 0.9

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS outbox (
        seq   INTEGER PRIMARY KEY,   -- the protocol's seq (docs/protocol.md)
        ts_us INTEGER,               -- microseconds since the epoch; NULL while held
        mono  REAL NOT NULL,         -- CLOCK_BOOTTIME seconds when measured
        boot  TEXT NOT NULL,         -- the boot that mono belongs to
        body  TEXT NOT NULL          -- JSON object of the sections, without seq and ts
    )""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', -1), ('dropped', 0)",
    # Readings set aside because the hub failed on them (see the module docstring).
    """CREATE TABLE IF NOT EXISTS parked (
        seq       INTEGER PRIMARY KEY,
        ts_us     INTEGER,
        mono      REAL NOT NULL,
        boot      TEXT NOT NULL,
        body      TEXT NOT NULL,
        reason    TEXT NOT NULL,
        parked_us INTEGER NOT NULL
    )""",
    # The energy integrator's state after the last stored reading (edge/energy.py).
    """CREATE TABLE IF NOT EXISTS energy_state (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        seq   INTEGER NOT NULL,      -- the reading it follows
        ts_us INTEGER,               -- that reading's time; NULL while it is held
        mono  REAL NOT NULL,
        boot  TEXT NOT NULL,
        state TEXT NOT NULL          -- telemetry.energy_increments.IntegratorState JSON
    )""",
    # The site's running energy totals after the last stored reading that had
    # energy (edge/energy_totals.py); written with it, like energy_state.
    """CREATE TABLE IF NOT EXISTS energy_totals (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        seq    INTEGER NOT NULL,     -- the reading they follow
        totals TEXT NOT NULL         -- edge.energy_totals.EnergyTotals JSON
    )""",
    # Per-device health for `ems edge status`; written on state changes only.
    """CREATE TABLE IF NOT EXISTS device_health (
        device   TEXT PRIMARY KEY,
        state    TEXT NOT NULL,
        since_us INTEGER NOT NULL,
        error    TEXT NOT NULL
    )""",
)


# Pages in use (the file keeps freed pages for reuse; they do not count).
_USED_BYTES: Final = (
    "SELECT (page_count - freelist_count) * page_size"
    " FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
)


class OutboxError(Exception):
    """The buffer file cannot be opened or written (a full disk, an I/O error)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"buffer {str(path)!r}: {reason}")


@dataclass(frozen=True, slots=True)
class NewReading:
    """A reading to store. ``ts_us`` is unset while the clock is untrusted (held)."""

    mono: float
    body: str  # JSON object with at least one section, without seq and ts
    ts_us: int | None = None
    # The energy integrator's state after this reading (edge/energy.py); None: none.
    energy_state: str | None = None
    # The site's running energy totals after this reading (edge/energy_totals.py); None: none.
    energy_totals: EnergyTotals | None = None


@dataclass(frozen=True, slots=True)
class EnergyRecord:
    """The energy state stored with the last reading that had one, and that reading's times."""

    seq: int
    ts_us: int | None  # None: the reading is held (no trusted time yet)
    mono: float
    boot: str
    state: str


@dataclass(frozen=True, slots=True)
class Stored:
    """A stamped reading of the outbox, ready for the wire."""

    seq: int
    ts_us: int
    body: str

    @property
    def ts(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.ts_us)

    def wire(self) -> str:
        """The reading frame as JSON text (docs/protocol.md, "A reading"), without re-encoding."""
        return f'{{"seq":{self.seq},"ts":"{wire_ts(self.ts_us)}",{self.body[1:]}'


def wire_ts(ts_us: int) -> str:
    """``telemetry.format_ts`` of the instant ``ts_us``, the same text at half the cost.

    A backlog drain formats a timestamp per reading (86,400 of them after a day
    offline); going through ``datetime`` was a tenth of the uplink's time.
    """
    seconds, micros = divmod(ts_us, 1_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if micros:
        return f"{text}.{micros:06d}".rstrip("0") + "Z"
    return text + "Z"


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device's state as the agent last recorded it, and since when."""

    device: str
    state: str
    since: datetime
    error: str


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    depth: int  # readings buffered (stamped and held)
    held: int  # readings waiting for a trusted clock
    oldest_ts: datetime | None  # the oldest stamped reading not yet acked; None: none
    last_ack: datetime | None  # wall time of the last ack; None: never
    dropped: int  # readings dropped because the buffer was full, over its life
    last_seq: int  # the last seq allocated (-1: none yet)
    used_bytes: int
    devices: tuple[DeviceRecord, ...] = ()
    parked: int = 0  # readings set aside because the hub failed on them (kept, not sent)


def ts_us_of(moment: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def rows_to_drop(*, used_bytes: int, max_bytes: int, rows: int) -> int:
    """How many of the oldest rows to drop to bring ``used_bytes`` down to the low-water mark.

    Rows are taken as equally large (the average), rounded up: zero when the
    file fits, at most every row.
    """
    if used_bytes <= max_bytes or rows <= 0:
        return 0
    per_row = used_bytes / rows
    excess = used_bytes - LOW_WATER * max_bytes
    return min(rows, math.ceil(excess / per_row))


async def _to_the_end(operation: Awaitable[None]) -> None:
    """Await ``operation`` until it has ended, even if cancelled meanwhile (then re-raised).

    For COMMIT and ROLLBACK: the statement runs in aiosqlite's thread whatever
    happens to the await, and the connection's state is known only once it ended.
    """
    task = asyncio.ensure_future(operation)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True  # again and again, if need be (CPython gh-86296)
    if cancelled:
        task.exception()  # retrieved: the cancellation is what the caller hears of
        raise asyncio.CancelledError
    task.result()


def _ts(ts_us: int | None) -> datetime | None:
    return None if ts_us is None else _EPOCH + timedelta(microseconds=ts_us)


class Outbox:
    """The open buffer. Use :meth:`open`; one instance per file and process."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        path: Path,
        max_bytes: int,
        totals: EnergyTotals | None = None,
    ) -> None:
        self._db = db
        self.path = path
        self.max_bytes = max_bytes
        # The energy totals of the last committed reading that had some (None: none
        # yet): set only once their transaction has committed.
        self.committed_totals = totals
        # One connection serves every task of the agent: a transaction must not
        # interleave with another task's statements, so each method holds the lock.
        self._lock = asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path, *, max_bytes: int) -> AsyncIterator[Outbox]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutboxError(path, str(err)) from err
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        connecting = aiosqlite.connect(path, isolation_level=None)
        try:
            db = await connecting
        except (OSError, sqlite3.Error) as err:
            # aiosqlite 0.22 stops its worker thread after a failed connect without
            # waiting for it; the thread then reports to this event loop, which the
            # caller may close first ("Event loop is closed" in that thread). Wait
            # for the thread here, so a failed open leaves nothing running.
            await asyncio.to_thread(connecting._thread.join, 5.0)
            raise OutboxError(path, str(err)) from err
        try:
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=FULL")
                await db.execute("PRAGMA busy_timeout=5000")
                # The queue touches its tail (appends) and its head (pages, deletes): a
                # small page cache holds them. SQLite's default (2 MiB) filled up slowly
                # after each outage and showed as RSS growth (docs/benchmarks.md).
                await db.execute("PRAGMA cache_size=-512")
                for statement in _SCHEMA:
                    await db.execute(statement)
                totals = await _stored_totals(db)
            except sqlite3.Error as err:
                raise OutboxError(path, str(err)) from err
            yield cls(db, path, max_bytes, totals)
        finally:
            await db.close()

    async def _meta(self, key: str) -> int:
        async with self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cursor:
            row = await cursor.fetchone()
        assert row is not None  # created with the schema
        return int(row[0])

    async def _used_bytes(self) -> int:
        async with self._db.execute(_USED_BYTES) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error or cancellation.

        The transaction has ended, one way or the other, whenever this returns
        or raises, wherever a cancellation lands: during BEGIN (it still runs
        in aiosqlite's thread, so it is rolled back), in the body (rolled back),
        or during COMMIT (awaited to its end, then the cancellation goes on: a
        caller cancelled there cannot tell whether it committed, so the writer
        never cancels a write, edge/outbox_writer.py). ROLLBACK outside a transaction
        is a no-op in Python's sqlite3, so it is always safe here.
        """
        db = self._db
        try:
            await db.execute("BEGIN IMMEDIATE")
            yield db
        except BaseException:
            await _to_the_end(db.rollback())
            raise
        await _to_the_end(db.commit())

    async def append(self, readings: Sequence[NewReading], *, boot: str) -> list[Stored]:
        """Store a batch in one transaction; returns the stamped ones with their seqs.

        When the batch pushes the file over ``max_bytes``, the oldest readings
        are dropped in the same transaction, counted and logged.
        """
        async with self._lock:
            if not readings:
                return []
            try:
                async with self._transaction() as db:
                    first = await self._meta("last_seq") + 1
                    rows = [
                        (first + index, reading.ts_us, reading.mono, boot, reading.body)
                        for index, reading in enumerate(readings)
                    ]
                    await db.executemany(
                        "INSERT INTO outbox (seq, ts_us, mono, boot, body) VALUES (?, ?, ?, ?, ?)",
                        rows,
                    )
                    await db.execute(
                        "UPDATE meta SET value = ? WHERE key = 'last_seq'",
                        (first + len(rows) - 1,),
                    )
                    await self._save_energy(readings, rows)
                    totals = await self._save_totals(readings, rows)
                    dropped = await self._drop_if_full()
            except sqlite3.Error as err:
                raise OutboxError(self.path, str(err)) from err
            if totals is not None:
                self.committed_totals = totals
            if dropped:
                logger.warning(
                    "buffer full (max %.1f MB): dropped the %d oldest readings, up to seq %d",
                    self.max_bytes / 1024 / 1024,
                    dropped[0],
                    dropped[1],
                    extra={"count": dropped[0], "up_to_seq": dropped[1], "reason": "buffer_full"},
                )
            return [
                Stored(seq, ts_us, body) for seq, ts_us, _, _, body in rows if ts_us is not None
            ]

    async def _save_energy(
        self,
        readings: Sequence[NewReading],
        rows: Sequence[tuple[int, int | None, float, str, str]],
    ) -> None:
        """Keep the energy state of the batch's last reading that has one (same transaction)."""
        for reading, (seq, ts_us, mono, boot, _) in zip(
            reversed(readings), reversed(rows), strict=True
        ):
            if reading.energy_state is not None:
                await self._db.execute(
                    "INSERT OR REPLACE INTO energy_state (id, seq, ts_us, mono, boot, state)"
                    " VALUES (1, ?, ?, ?, ?, ?)",
                    (seq, ts_us, mono, boot, reading.energy_state),
                )
                return

    async def _save_totals(
        self,
        readings: Sequence[NewReading],
        rows: Sequence[tuple[int, int | None, float, str, str]],
    ) -> EnergyTotals | None:
        """Keep the energy totals of the batch's last reading that has some (same
        transaction); those totals, or None when no reading had any."""
        for reading, (seq, *_) in zip(reversed(readings), reversed(rows), strict=True):
            if reading.energy_totals is not None:
                await self._db.execute(
                    "INSERT OR REPLACE INTO energy_totals (id, seq, totals) VALUES (1, ?, ?)",
                    (seq, reading.energy_totals.to_json()),
                )
                return reading.energy_totals
        return None

    async def energy_record(self) -> EnergyRecord | None:
        """The energy state stored with the last reading that had one; None: never."""
        async with self._lock:
            try:
                async with self._db.execute(
                    "SELECT seq, ts_us, mono, boot, state FROM energy_state WHERE id = 1"
                ) as cursor:
                    row = await cursor.fetchone()
            except sqlite3.Error as err:
                raise OutboxError(self.path, str(err)) from err
            if row is None:
                return None
            seq, ts_us, mono, boot, state = row
            return EnergyRecord(
                int(seq), None if ts_us is None else int(ts_us), float(mono), str(boot), str(state)
            )

    async def _drop_if_full(self) -> tuple[int, int] | None:
        used = await self._used_bytes()
        if used <= self.max_bytes:
            return None
        async with self._db.execute("SELECT count(*) FROM outbox") as cursor:
            row = await cursor.fetchone()
        count = int(row[0]) if row else 0
        drop = rows_to_drop(used_bytes=used, max_bytes=self.max_bytes, rows=count)
        if drop == 0:
            return None
        async with self._db.execute(
            "SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET ?", (drop - 1,)
        ) as cursor:
            last = await cursor.fetchone()
        assert last is not None
        await self._db.execute("DELETE FROM outbox WHERE seq <= ?", (last[0],))
        await self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (drop,))
        return drop, int(last[0])

    async def restamp(self, *, boot: str, offset: float, clock: str | None = None) -> int:
        """Give the held readings of ``boot`` their time, ``mono + offset`` (edge/clock.py).

        ``clock``: the clock that gave it, set as the body's ``clock`` field.
        """
        async with self._lock:
            try:
                # One transaction: a stamped reading is never seen without its span.
                async with self._transaction() as db:
                    count = await self._restamp(db, boot=boot, offset=offset, clock=clock)
            except sqlite3.Error as err:
                raise OutboxError(self.path, str(err)) from err
            if count:
                logger.info("re-stamped %d held readings", count, extra={"count": count})
            return count

    @staticmethod
    async def _restamp(
        db: aiosqlite.Connection, *, boot: str, offset: float, clock: str | None
    ) -> int:
        """The statements of :meth:`restamp`, in its transaction; how many were stamped."""
        cursor = await db.execute(
            "UPDATE outbox SET ts_us = CAST(round((mono + ?) * 1e6) AS INTEGER),"
            " body = CASE WHEN ? IS NULL THEN body ELSE json_set(body, '$.clock', ?) END"
            " WHERE ts_us IS NULL AND boot = ?",
            (offset, clock, clock, boot),
        )
        count = cursor.rowcount
        # A reading whose energy interval began before a reboot learns its span
        # now (edge/energy.py): from the earlier reading's time to its own; over a
        # year (what a reading may carry, docs/protocol.md "Energy") it stays unknown.
        await db.execute(
            "UPDATE outbox SET body = json_remove(json_set(body, '$.energy.span_s',"
            " (SELECT CASE WHEN span > ? THEN NULL ELSE round(span / 1e6, 3) END FROM"
            "  (SELECT max(0, ts_us - json_extract(body, '$.energy.since_us')) AS span))),"
            " '$.energy.since_us')"
            " WHERE boot = ? AND json_extract(body, '$.energy.since_us') IS NOT NULL"
            " AND ts_us IS NOT NULL",
            (round(MAX_SPAN_S * 1e6), boot),
        )
        await db.execute(
            "UPDATE energy_state SET ts_us = CAST(round((mono + ?) * 1e6) AS INTEGER)"
            " WHERE ts_us IS NULL AND boot = ?",
            (offset, boot),
        )
        return count

    async def drop_unstampable(self, *, boot: str) -> int:
        """Drop (and count) held readings of other boots: their monotonic time is lost."""
        async with self._lock:
            try:
                async with self._transaction() as db:
                    cursor = await db.execute(
                        "DELETE FROM outbox WHERE ts_us IS NULL AND boot != ?", (boot,)
                    )
                    count = cursor.rowcount
                    await db.execute(
                        "UPDATE meta SET value = value + ? WHERE key = 'dropped'", (count,)
                    )
            except sqlite3.Error as err:
                raise OutboxError(self.path, str(err)) from err
            if count:
                logger.warning(
                    "dropped %d readings held from an earlier boot: the clock was never trusted "
                    "then, so their time cannot be known",
                    count,
                    extra={"count": count, "reason": "unstampable"},
                )
            return count

    async def page(self, *, after_seq: int, limit: int) -> list[Stored]:
        """Stamped readings with ``seq > after_seq``, oldest first."""
        async with self._lock:
            async with self._db.execute(
                "SELECT seq, ts_us, body FROM outbox WHERE seq > ? AND ts_us IS NOT NULL"
                " ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ) as cursor:
                rows = await cursor.fetchall()
            return [Stored(int(seq), int(ts_us), str(body)) for seq, ts_us, body in rows]

    async def fetch(self, seqs: Iterable[int]) -> list[Stored]:
        """The stamped readings among ``seqs`` that are still buffered, oldest first."""
        async with self._lock:
            found: list[Stored] = []
            for first, last in seq_ranges(seqs):
                async with self._db.execute(
                    "SELECT seq, ts_us, body FROM outbox WHERE seq BETWEEN ? AND ?"
                    " AND ts_us IS NOT NULL ORDER BY seq",
                    (first, last),
                ) as cursor:
                    rows = await cursor.fetchall()
                found.extend(Stored(int(seq), int(ts_us), str(body)) for seq, ts_us, body in rows)
            return found

    async def delete(self, seqs: Iterable[int], *, acked_at: datetime) -> int:
        """Delete acked readings (one transaction) and remember when the last ack came."""
        async with self._lock:
            ranges = seq_ranges(seqs)
            if not ranges:
                return 0
            try:
                async with self._transaction() as db:
                    cursor = await db.executemany(
                        "DELETE FROM outbox WHERE seq BETWEEN ? AND ?", ranges
                    )
                    deleted = cursor.rowcount
                    await db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_ack_us', ?)",
                        (ts_us_of(acked_at),),
                    )
            except sqlite3.Error as err:
                raise OutboxError(self.path, str(err)) from err
            return deleted

    async def park(self, seqs: Iterable[int], *, reason: str, at: datetime) -> int:
        """Move readings out of the outbox into ``parked`` (one transaction); how many."""
        async with self._lock:
            ranges = seq_ranges(seqs)
            if not ranges:
                return 0
            try:
                async with self._transaction() as db:
                    await db.executemany(
                        "INSERT OR REPLACE INTO parked"
                        " (seq, ts_us, mono, boot, body, reason, parked_us)"
                        " SELECT seq, ts_us, mono, boot, body, ?, ? FROM outbox"
                        " WHERE seq BETWEEN ? AND ?",
                        [(reason, ts_us_of(at), first, last) for first, last in ranges],
                    )
                    cursor = await db.executemany(
                        "DELETE FROM outbox WHERE seq BETWEEN ? AND ?", ranges
                    )
                    return int(cursor.rowcount)
            except sqlite3.Error as err:
                raise OutboxError(self.path, str(err)) from err

    async def unpark(self) -> int:
        """Move every parked reading back into the outbox (one transaction); how many."""
        async with self._lock:
            try:
                async with self._transaction() as db:
                    cursor = await db.execute(
                        "INSERT OR IGNORE INTO outbox (seq, ts_us, mono, boot, body)"
                        " SELECT seq, ts_us, mono, boot, body FROM parked"
                    )
                    moved = int(cursor.rowcount)
                    await db.execute("DELETE FROM parked")
                    return moved
            except sqlite3.Error as err:
                raise OutboxError(self.path, str(err)) from err

    async def record_health(self, device: str, state: str, error: str, *, at: datetime) -> None:
        """Remember a device's new state for ``ems edge status``."""
        async with self._lock:
            try:
                await self._db.execute(
                    "INSERT OR REPLACE INTO device_health (device, state, since_us, error)"
                    " VALUES (?, ?, ?, ?)",
                    (device, state, ts_us_of(at), error),
                )
                await self._db.commit()
            except sqlite3.Error as err:
                raise OutboxError(self.path, str(err)) from err

    async def status(self) -> OutboxStatus:
        async with self._lock:
            status = _status_from(await self._status_rows())
            async with self._db.execute("SELECT count(*) FROM parked") as cursor:
                parked = await cursor.fetchone()
            assert parked is not None
            return dataclasses.replace(status, parked=int(parked[0]))

    async def _status_rows(self) -> tuple[int, int, int | None, int | None, int, int, int]:
        db = self._db
        async with db.execute("SELECT count(*), count(*) - count(ts_us) FROM outbox") as cursor:
            counts = await cursor.fetchone()
        async with db.execute(
            "SELECT ts_us FROM outbox WHERE ts_us IS NOT NULL ORDER BY seq LIMIT 1"
        ) as cursor:
            oldest = await cursor.fetchone()
        async with db.execute(
            "SELECT key, value FROM meta WHERE key IN ('last_ack_us', 'dropped', 'last_seq')"
        ) as cursor:
            meta = {str(key): int(value) for key, value in await cursor.fetchall()}
        assert counts is not None
        return (
            int(counts[0]),
            int(counts[1]),
            int(oldest[0]) if oldest else None,
            meta.get("last_ack_us"),
            int(meta["dropped"]),
            int(meta["last_seq"]),
            await self._used_bytes(),
        )


async def _stored_totals(db: aiosqlite.Connection) -> EnergyTotals | None:
    """The energy totals stored with the last reading that had some; None: never.

    Unreadable totals (a file edited by hand) are logged and the totals start
    afresh: Home Assistant takes a total that went down as a new meter.
    """
    async with db.execute("SELECT totals FROM energy_totals WHERE id = 1") as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    try:
        return EnergyTotals.from_json(str(row[0]))
    except ValueError as err:
        logger.warning("stored energy totals not usable, starting afresh: %s", err)
        return None


def _status_from(row: tuple[int, int, int | None, int | None, int, int, int]) -> OutboxStatus:
    depth, held, oldest_us, last_ack_us, dropped, last_seq, used = row
    return OutboxStatus(
        depth=depth,
        held=held,
        oldest_ts=_ts(oldest_us),
        last_ack=_ts(last_ack_us),
        dropped=dropped,
        last_seq=last_seq,
        used_bytes=used,
    )


def read_status(path: Path) -> OutboxStatus:
    """The status of a buffer file, read-only (``ems edge status``, beside a running agent)."""
    if not path.exists():
        raise OutboxError(path, "no such file (has the agent run yet?)")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise OutboxError(path, str(err)) from err
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone() is None:
            raise OutboxError(path, "not an edge buffer (yet): it has no outbox table")
        depth, unstamped = db.execute(
            "SELECT count(*), count(*) - count(ts_us) FROM outbox"
        ).fetchone()
        oldest = db.execute(
            "SELECT ts_us FROM outbox WHERE ts_us IS NOT NULL ORDER BY seq LIMIT 1"
        ).fetchone()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        used = db.execute(_USED_BYTES).fetchone()[0]
        has_parked = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'parked'").fetchone()
        parked = db.execute("SELECT count(*) FROM parked").fetchone()[0] if has_parked else 0
        devices = tuple(
            DeviceRecord(str(name), str(state), _EPOCH + timedelta(microseconds=since), str(error))
            for name, state, since, error in db.execute(
                "SELECT device, state, since_us, error FROM device_health ORDER BY device"
            )
        )
    except sqlite3.Error as err:
        raise OutboxError(path, str(err)) from err
    finally:
        db.close()
    status = _status_from(
        (
            int(depth),
            int(unstamped),
            int(oldest[0]) if oldest else None,
            meta.get("last_ack_us"),
            int(meta.get("dropped", 0)),
            int(meta.get("last_seq", -1)),
            int(used),
        )
    )
    return dataclasses.replace(status, devices=devices, parked=int(parked))
