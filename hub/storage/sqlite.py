"""Embedded SQLite storage (aiosqlite): the zero-setup default when no database URL is given.

Same tables and behaviour as PostgreSQL, from the same history of schema versions
(:mod:`hub.storage.history`), adapted:
times are integer microseconds since the Unix epoch (exact, and ordered like
the instants), ``extra`` and the phase lists are packed BLOBs, ``extra``'s names
kept once per list (schema version 5, :mod:`hub.storage.sqlite_values`; rows of
an older version keep JSON text and read as they are), ``devices`` is JSON text, and
``readings`` is a ``WITHOUT ROWID`` table clustered on its primary key ``(device_id, ts)``, so a
device's time range is one contiguous B-tree range.

Durability. The hub acks a reading only after its commit, and an ack lets the
edge delete it (docs/protocol.md, "Hub -> device"). In WAL mode, ``synchronous =
NORMAL`` survives a killed process but may lose the last commits on power loss
or an OS crash; ``FULL`` fsyncs the WAL at every commit. The writer commits a
batch (up to thousands of rows) at a time, so ``FULL`` costs one fsync per
batch, and it is the default. ``NORMAL`` is an option for SD cards that wear.

Two connections: one for writes (transactions serialised by a lock, so a token
command never lands inside the writer's transaction), one for reads, which WAL
lets run beside a write and which never see uncommitted rows.

Errors are translated in :meth:`SqliteStorage._translated`: "database is
locked", I/O errors and a closed connection are ``StorageUnavailable``,
anything else from sqlite3 a ``StorageError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiosqlite

from hub.storage.base import (
    DeviceRecord,
    StorageError,
    StorageUnavailable,
    StoredReading,
    TokenRecord,
)
from hub.storage.columns import (
    BUCKET_ORIGIN,
    DEVICES_INDEX,
    ENERGY_COMPLETE_INDEX,
    ENERGY_OFFSET,
    EXTRA_INDEX,
    FIELD_COLUMNS,
    FIELDS_OFFSET,
    NUMERIC_COLUMNS,
    READING_COLUMNS,
    ColumnKind,
    FieldColumn,
    Row,
    bucket_from_values,
    check_bucket,
    check_range,
    json_text,
    micros_from_utc,
    to_row,
    utc_from_micros,
    wire_from_row,
)
from hub.storage.energy import (
    DEVICE_TIMEZONES,
    ENERGY_BUCKET_US,
    ENERGY_ROLLUP,
    SUM_COLUMNS,
    EnergySums,
    bucket_of_micros,
    check_edges,
    rollup_deltas,
    sums_sql,
    upsert_assignments,
)
from hub.storage.history import Dialect, Migration, run_migrations
from hub.storage.name_lists import (
    NameLists,
    Names,
    assign_ids,
    delete_unused,
    names_for,
    store_lists,
)
from hub.storage.packed import varint
from hub.storage.pruned_energy import fold_sql, total_sql
from hub.storage.schema import (
    READINGS,
    TOKEN_GENERATION,
    TOKENS,
    VERSION_TABLE,
    sqlite_device_ids,
)
from hub.storage.sqlite_values import (
    PendingExtra,
    extra_from_sqlite,
    extra_to_sqlite,
    list_from_sqlite,
    list_to_sqlite,
    packed_ids,
)
from telemetry.backoff import Backoff, BackoffPolicy

logger = logging.getLogger(__name__)


class Synchronous(enum.Enum):
    """SQLite's ``PRAGMA synchronous`` in WAL mode (see the module docstring)."""

    NORMAL = "NORMAL"
    FULL = "FULL"


@dataclass(frozen=True, slots=True)
class SqliteOptions:
    synchronous: Synchronous = Synchronous.FULL
    busy_timeout_s: float = 5.0  # another process (``ems hub token add``) holding the lock


# Opening a file another hub is switching to WAL: 20 ms doubling to 0.5 s, jittered.
OPEN_RETRY: Final = BackoffPolicy(0.02, 0.5)
_COLUMN_LIST: Final = ", ".join(READING_COLUMNS)
_INSERT: Final = (
    f"INSERT INTO {READINGS} ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(READING_COLUMNS))}) "
    "ON CONFLICT (device_id, ts) DO NOTHING"
)
_SELECT_READINGS: Final = (
    f"SELECT {_COLUMN_LIST} FROM {READINGS} "
    "WHERE device_id = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?"
)
_ROLLUP_COLUMNS: Final = ("device_id", "bucket", *SUM_COLUMNS)
_UPSERT_ROLLUP: Final = (
    f"INSERT INTO {ENERGY_ROLLUP} ({', '.join(_ROLLUP_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_ROLLUP_COLUMNS))}) "
    f"ON CONFLICT (device_id, bucket) DO UPDATE SET {upsert_assignments()}"
)
_STORED_KEYS: Final = f"SELECT ts FROM {READINGS} WHERE device_id = ? AND ts >= ? AND ts <= ?"
_ROLLUP_FROM_READINGS: Final = (
    f"INSERT INTO {ENERGY_ROLLUP} ({', '.join(_ROLLUP_COLUMNS)}) "
    f"SELECT device_id, ts - ts % {ENERGY_BUCKET_US}, count(*), "
    "count(CASE WHEN energy_complete = 0 THEN 1 END), coalesce(sum(energy_span_s), 0), "
    "coalesce(max(energy_span_s), 0), "
    + ", ".join(f"sum(energy_{name})" for name in SUM_COLUMNS[4:])
    + f" FROM {READINGS} WHERE device_id = ? AND ts >= ? AND ts <= ? "
    # The SELECT has its WHERE, so SQLite's parser does not read ON CONFLICT as a
    # join's ON (https://sqlite.org/lang_upsert.html, "Parsing Ambiguity").
    "AND energy_complete IS NOT NULL GROUP BY 2 ORDER BY 2 "
    f"ON CONFLICT (device_id, bucket) DO UPDATE SET {upsert_assignments()}"
)
# Intervals from a JSON array of edges (microseconds), each an index range scan of
# the rollup's primary key: a month of hours is 720 short seeks, not a scan.
_SELECT_ENERGY: Final = (
    "WITH e(i, s, t) AS (SELECT key, value, lead(value) OVER (ORDER BY key) "
    "FROM json_each(?)) "
    f"SELECT e.i, {sums_sql('r.')}"
    f" FROM e JOIN {ENERGY_ROLLUP} r ON r.device_id = ? AND r.bucket >= e.s AND r.bucket < e.t "
    "WHERE e.t IS NOT NULL GROUP BY e.i"
)
# Every bucket of a device: one range of the primary key, summed (no intervals to group).
_SELECT_ENERGY_TOTAL: Final = total_sql(ENERGY_ROLLUP, "?")
# A device's rollup buckets past retention: folded, then deleted (hub/storage/pruned_energy.py).
_PAST_RETENTION: Final = "device_id = ? AND bucket < ?"
_FOLD_PAST_RETENTION: Final = fold_sql(ENERGY_ROLLUP, _PAST_RETENTION)
_DELETE_PAST_RETENTION: Final = f"DELETE FROM {ENERGY_ROLLUP} WHERE {_PAST_RETENTION}"
_SELECT_NEWEST: Final = _SELECT_READINGS.replace("ORDER BY ts", "ORDER BY ts DESC")


def _bucket_value(column: FieldColumn) -> str:
    """A bucket's value of one column: the mean, or a counter's last value in the bucket."""
    if not column.cumulative:
        return f"b.{column.name}"
    # One backward seek on the primary key per bucket and counter.
    return (
        f"(SELECT r.{column.name} FROM {READINGS} r WHERE r.device_id = :device_id "
        "AND r.ts >= max(b.bucket, :start) AND r.ts < min(b.bucket + :width, :end) "
        f"AND r.{column.name} IS NOT NULL ORDER BY r.ts DESC LIMIT 1)"
    )


# Integer arithmetic on microseconds: bucket edges at origin + k * width, like date_bin.
_BUCKETS: Final = (
    "WITH b AS (SELECT ((ts - :origin) / :width) * :width + :origin AS bucket, "
    + ", ".join(f"avg({c.name}) AS {c.name}" for c in NUMERIC_COLUMNS if not c.cumulative)
    + f" FROM {READINGS} WHERE device_id = :device_id AND ts >= :start AND ts < :end "
    "GROUP BY bucket) SELECT b.bucket, "
    + ", ".join(_bucket_value(c) for c in NUMERIC_COLUMNS)
    + " FROM b ORDER BY b.bucket"
)
# Distinct ids by min() probes on the primary key (each one a B-tree seek), then
# each device's newest row by max(ts) on the same key: never a table scan.
_DEVICES: Final = f"""
{sqlite_device_ids(READINGS)}, known(device_id) AS (
    SELECT device_id FROM ids WHERE device_id IS NOT NULL
    UNION
    SELECT device_id FROM {TOKENS}
)
SELECT known.device_id, {", ".join(f"r.{c}" for c in READING_COLUMNS)}
FROM known LEFT JOIN {READINGS} r
    ON r.device_id = known.device_id
    AND r.ts = (SELECT max(ts) FROM {READINGS} WHERE device_id = known.device_id)
ORDER BY known.device_id"""

_LIST_INDEXES: Final = tuple(
    index
    for index, column in enumerate(FIELD_COLUMNS, start=FIELDS_OFFSET)
    if column.kind is ColumnKind.NUMBER_LIST
)


def _to_sqlite(row: Row, lists: NameLists) -> Row:
    """A row as SQLite stores it, but its ``extra`` still waits for its list's id."""
    values = list(row)
    values[1] = micros_from_utc(values[1])
    values[3] = micros_from_utc(values[3])
    for index in _LIST_INDEXES:
        if values[index] is not None:
            values[index] = list_to_sqlite(values[index])
    if values[EXTRA_INDEX] is not None:
        values[EXTRA_INDEX] = extra_to_sqlite(values[EXTRA_INDEX], lists)
    if values[DEVICES_INDEX] is not None:
        values[DEVICES_INDEX] = json_text(values[DEVICES_INDEX])
    return tuple(values)


def _newest_per_list(rows: Sequence[Row]) -> dict[Names, int]:
    """Each list of names of ``rows``' ``extra``, and the newest ts using it."""
    # By the tuple's identity first: the rows of a list share one (NameLists.shared).
    newest_by_tuple: dict[int, tuple[Names, int]] = {}
    for row in rows:
        extra = row[EXTRA_INDEX]
        if isinstance(extra, PendingExtra):
            seen = newest_by_tuple.get(id(extra.names))
            if seen is None or row[1] > seen[1]:
                newest_by_tuple[id(extra.names)] = (extra.names, row[1])
    newest: dict[Names, int] = {}
    for names, ts in newest_by_tuple.values():
        newest[names] = max(ts, newest.get(names, ts))
    return newest


def _with_ids(rows: Sequence[Row], ids: dict[Names, int]) -> list[Sequence[Any]]:
    """``rows`` with each waiting ``extra`` given its list's id."""
    prefixes: dict[int, bytes] = {}  # by the names tuple's identity, as above
    out: list[Sequence[Any]] = []
    for row in rows:
        extra = row[EXTRA_INDEX]
        if isinstance(extra, PendingExtra):
            prefix = prefixes.get(id(extra.names))
            if prefix is None:
                prefix = prefixes[id(extra.names)] = varint(ids[extra.names])
            values = list(row)
            values[EXTRA_INDEX] = prefix + extra.values
            out.append(values)
        else:
            out.append(row)
    return out


def _from_sqlite(record: Sequence[Any], lists: dict[int, Names]) -> Row:
    """A stored row in :data:`READING_COLUMNS` form; ``lists`` must know its ``extra``'s list."""
    values = list(record)
    values[1] = utc_from_micros(values[1])
    values[3] = utc_from_micros(values[3])
    for index in _LIST_INDEXES:
        if values[index] is not None:
            values[index] = list_from_sqlite(values[index])
    if values[EXTRA_INDEX] is not None:
        values[EXTRA_INDEX] = extra_from_sqlite(values[EXTRA_INDEX], lists)
    if values[DEVICES_INDEX] is not None:
        values[DEVICES_INDEX] = json.loads(values[DEVICES_INDEX])
    return tuple(values)


# Primary result codes that mean "not now" (https://sqlite.org/rescode.html):
# BUSY, LOCKED (another connection holds the lock past busy_timeout), NOMEM,
# IOERR (and its extended codes), FULL (disk full), CANTOPEN, PROTOCOL.
_TRANSIENT_CODES: Final = frozenset({5, 6, 7, 10, 13, 14, 15})


def is_unavailable(err: Exception) -> bool:
    """Whether ``err`` means the file cannot be used right now (retry later)."""
    if isinstance(err, OSError):
        return True
    if isinstance(err, ValueError) and not isinstance(err, sqlite3.Error):
        return True  # aiosqlite: "Connection closed" / "no active connection"
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        return isinstance(code, int) and (code & 0xFF) in _TRANSIENT_CODES
    return False


def _device_spans(rows: Sequence[Row]) -> dict[str, tuple[int, int]]:
    """Per device, the first and last ts of ``rows``."""
    spans: dict[str, tuple[int, int]] = {}
    for row in rows:
        device_id, ts = row[0], row[1]
        span = spans.get(device_id)
        if span is None:
            spans[device_id] = (ts, ts)
        elif ts < span[0]:
            spans[device_id] = (ts, span[1])
        elif ts > span[1]:
            spans[device_id] = (span[0], ts)
    return spans


async def _stored_keys(
    conn: aiosqlite.Connection, spans: dict[str, tuple[int, int]]
) -> set[tuple[str, int]]:
    """The keys stored already within each device's span: one range per device."""
    keys: set[tuple[str, int]] = set()
    for device_id, (low, high) in spans.items():
        found = await conn.execute_fetchall(_STORED_KEYS, (device_id, low, high))
        keys.update((device_id, ts) for (ts,) in found)
    return keys


def _inserted(rows: Sequence[Row], stored: set[tuple[str, int]]) -> list[Row]:
    """What ``INSERT ... ON CONFLICT DO NOTHING`` of ``rows`` inserts: each new key's first row."""
    seen = set(stored)
    inserted: list[Row] = []
    for row in rows:
        key = (row[0], row[1])
        if key in seen:
            continue
        seen.add(key)
        inserted.append(row)
    return inserted


async def _device_ids(conn: aiosqlite.Connection, table: str) -> list[str]:
    """The distinct device ids of ``table``, by one primary-key seek each (no scan)."""
    rows = await conn.execute_fetchall(
        f"{sqlite_device_ids(table)} SELECT device_id FROM ids WHERE device_id IS NOT NULL"
    )
    return [row[0] for row in rows]


async def _delete_oldest(
    conn: aiosqlite.Connection, device_id: str, cutoff: int, limit: int
) -> int:
    """Delete up to ``limit`` of a device's oldest readings before ``cutoff``; how many."""
    # The ts of the limit-th oldest: everything up to it goes, as one key range.
    rows = await conn.execute_fetchall(
        f"SELECT ts FROM {READINGS} WHERE device_id = ? AND ts < ? ORDER BY ts LIMIT 1 OFFSET ?",
        (device_id, cutoff, limit - 1),
    )
    found = list(rows)
    upper = cutoff if not found else found[0][0] + 1
    cursor = await conn.execute(
        f"DELETE FROM {READINGS} WHERE device_id = ? AND ts < ?", (device_id, upper)
    )
    return int(cursor.rowcount)


class _SqliteTarget:
    """:class:`hub.storage.history.SchemaTarget` on a connection inside ``BEGIN IMMEDIATE``."""

    dialect = Dialect.SQLITE

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.where = str(path)

    async def execute(self, sql: str) -> None:
        await self._conn.execute(sql)

    async def applied_versions(self) -> set[int]:
        rows = await self._conn.execute_fetchall(f"SELECT version FROM {VERSION_TABLE}")
        return {row[0] for row in rows}

    async def record(self, migration: Migration) -> None:
        await self._conn.execute(
            f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, time.time_ns() // 1000),
        )

    async def readings_columns(self) -> set[str]:
        rows = await self._conn.execute_fetchall(f"PRAGMA table_info({READINGS})")
        return {row[1] for row in rows}

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield  # the caller's BEGIN IMMEDIATE holds the whole run


class SqliteStorage:
    """The :class:`hub.storage.base.Storage` interface on one SQLite file."""

    def __init__(self, path: Path, options: SqliteOptions | None = None) -> None:
        self.path = path
        self._options = options or SqliteOptions()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        # A read that decodes extra: its rows and their lists in one read transaction.
        self._read_lock = asyncio.Lock()
        self._lists = NameLists()  # ids of extra's lists of names (hub/storage/name_lists.py)

    @property
    def description(self) -> str:
        return f"SQLite {sqlite3.sqlite_version} at {self.path}"

    # -- lifecycle ---------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        connecting = aiosqlite.connect(
            self.path, isolation_level=None, timeout=self._options.busy_timeout_s
        )
        try:
            conn = await connecting
        except BaseException:
            # aiosqlite 0.22 stops its worker thread after a failed connect without
            # waiting for it; the thread would then report to a loop that may be
            # closed by then ("Event loop is closed"). Wait for it (edge/outbox.py).
            await asyncio.to_thread(connecting._thread.join, 5.0)
            raise
        await conn.execute(f"PRAGMA busy_timeout = {int(self._options.busy_timeout_s * 1000)}")
        await conn.execute(f"PRAGMA synchronous = {self._options.synchronous.value}")
        return conn

    async def open(self) -> None:
        # Switching a new file to WAL needs it to itself, and SQLite answers "database
        # is locked" at once rather than waiting when another hub is opening it
        # too: retry for as long as the busy timeout would have waited.
        deadline = time.monotonic() + self._options.busy_timeout_s
        retry = Backoff(OPEN_RETRY)
        while True:
            try:
                await self._open_once()
            except StorageUnavailable as err:
                await self.close()  # a half-open storage holds no connection
                if time.monotonic() >= deadline:
                    raise
                delay = retry.next_delay()
                logger.debug("opening %s: %s; again in %.2f s", self.path, err, delay)
                await asyncio.sleep(delay)
            except BaseException:
                await self.close()
                raise
            else:
                break
        logger.info("storage: %s", self.description)

    async def _open_once(self) -> None:
        async with self._translated("opening the database"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._connect()
            # WAL is a property of the file: readers run beside a writer.
            await self._writer.execute("PRAGMA journal_mode = WAL")
            await self._migrate(self._writer)
            self._reader = await self._connect()

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.close()
        self._reader = self._writer = None

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock first: two hubs on one file take turns.
        # The whole run is one transaction (SQLite's DDL is transactional).
        await conn.execute("BEGIN IMMEDIATE")  # outside the try: no transaction if it fails
        try:
            await run_migrations(_SqliteTarget(conn, self.path))
            await conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.execute("ROLLBACK")
            raise

    # -- the one place errors are translated ---------------------------------

    @contextlib.asynccontextmanager
    async def _translated(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except (sqlite3.Error, ValueError, OSError) as err:
            if is_unavailable(err):
                raise StorageUnavailable(f"{what}: {type(err).__name__}: {err}") from err
            raise StorageError(f"{what}: {type(err).__name__}: {err}") from err

    def _require(self, conn: aiosqlite.Connection | None, what: str) -> aiosqlite.Connection:
        if conn is None:
            raise StorageUnavailable(f"{what}: storage is not open")
        return conn

    @contextlib.asynccontextmanager
    async def _transaction(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock, self._translated(what):
            conn = self._require(self._writer, what)
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def _fetch(self, what: str, sql: str, params: Any = ()) -> list[Any]:
        async with self._translated(what):
            conn = self._require(self._reader, what)
            return list(await conn.execute_fetchall(sql, params))

    @contextlib.contextmanager
    def _undecodable(self, what: str) -> Iterator[None]:
        """A stored value that does not decode is a broken file, not an outage."""
        try:
            yield
        except ValueError as err:
            raise StorageError(f"{what}: {err}") from err

    async def _fetch_with_lists(
        self, what: str, sql: str, params: Any, extra_at: int
    ) -> tuple[list[Any], dict[int, Names]]:
        """Rows, and the lists of names of their ``extra`` (column ``extra_at``), from one
        snapshot: retention may delete rows and their lists in between otherwise."""
        async with self._read_lock, self._translated(what):
            conn = self._require(self._reader, what)
            await conn.execute("BEGIN")
            try:
                records = list(await conn.execute_fetchall(sql, params))
                with self._undecodable(what):
                    ids = packed_ids(record[extra_at] for record in records)
                lists = await names_for(conn, ids, self._lists)
            finally:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.execute("COMMIT")  # ends the read transaction
        return records, lists

    async def check(self) -> None:
        await self._fetch("checking the database", "SELECT 1")

    # -- writes ----------------------------------------------------------------

    async def write_readings(self, rows: Sequence[StoredReading]) -> None:
        await self.write_prepared([self.prepare(stored) for stored in rows])

    def prepare(self, stored: StoredReading) -> Row:
        return _to_sqlite(to_row(stored), self._lists)

    async def write_prepared(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        async with self._transaction(f"writing {len(rows)} readings") as conn:
            ids, gone = await self._insert(conn, rows)
        # Committed: later batches with these lists skip looking them up.
        self._lists.forget(gone)
        for names, names_id in ids.items():
            self._lists.learn(names_id, names)

    async def _insert(
        self, conn: aiosqlite.Connection, rows: Sequence[Row]
    ) -> tuple[dict[Names, int], set[int]]:
        """Insert ``rows``; the ids of their lists of names, and the known ids found gone."""
        energy = any(row[ENERGY_COMPLETE_INDEX] is not None for row in rows)
        extra = any(isinstance(row[EXTRA_INDEX], PendingExtra) for row in rows)
        stored: set[tuple[str, int]] = set()
        spans = _device_spans(rows)
        if energy or extra:
            # The write lock is held from BEGIN IMMEDIATE: what is stored now is
            # what the insert will find, so the rows it really inserts are known,
            # and only those store a list or raise its last_ts.
            stored = await _stored_keys(conn, spans)
            rows = _inserted(rows, stored)
        newest = _newest_per_list(rows)
        # The lists this hub knows: last_ts raised, or found gone (hub/storage/name_lists.py).
        ids, absent, gone = await assign_ids(conn, newest, self._lists)
        if absent:
            ids |= await store_lists(conn, {names: newest[names] for names in absent})
        await conn.executemany(_INSERT, _with_ids(rows, ids))
        if not energy:
            return ids, gone
        if not stored:
            # Nothing of the batch's time spans was stored before: every row in
            # them now is the batch's own, summed by SQLite itself.
            for device_id, (low, high) in spans.items():
                await conn.execute(_ROLLUP_FROM_READINGS, (device_id, low, high))
            return ids, gone
        deltas = rollup_deltas(
            [(row[0], row[1], row[ENERGY_OFFSET:]) for row in rows], bucket_of_micros
        )
        await conn.executemany(
            _UPSERT_ROLLUP,
            [(*key, *sums.values()) for key, sums in sorted(deltas.items())],
        )
        return ids, gone

    # -- queries ----------------------------------------------------------------

    async def readings(
        self,
        device_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        *,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        check_range(start, end)
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        records, lists = await self._fetch_with_lists(
            "reading readings",
            _SELECT_NEWEST if newest_first else _SELECT_READINGS,
            (device_id, micros_from_utc(start), micros_from_utc(end), limit),
            EXTRA_INDEX,
        )
        with self._undecodable("reading readings"):
            return [wire_from_row(_from_sqlite(record, lists)) for record in records]

    async def buckets(
        self, device_id: str, start: datetime, end: datetime, bucket: timedelta
    ) -> list[dict[str, Any]]:
        check_range(start, end)
        check_bucket(bucket)
        width = bucket // timedelta(microseconds=1)
        records = await self._fetch(
            "averaging readings",
            _BUCKETS,
            {
                "origin": micros_from_utc(BUCKET_ORIGIN),
                "width": width,
                "device_id": device_id,
                "start": micros_from_utc(start),
                "end": micros_from_utc(end),
            },
        )
        return [bucket_from_values(utc_from_micros(r[0]), tuple(r)[1:]) for r in records]

    async def energy(self, device_id: str, edges: Sequence[datetime]) -> list[EnergySums | None]:
        check_edges(edges)
        micros = json_text([micros_from_utc(edge) for edge in edges])
        records = await self._fetch("adding up energy", _SELECT_ENERGY, (micros, device_id))
        out: list[EnergySums | None] = [None] * (len(edges) - 1)
        for record in records:
            out[record[0]] = EnergySums.from_values(tuple(record)[1:])
        return out

    async def energy_total(self, device_id: str) -> EnergySums | None:
        records = await self._fetch(
            "adding up all energy", _SELECT_ENERGY_TOTAL, (device_id, device_id)
        )
        values = tuple(records[0]) if records else ()
        return EnergySums.from_values(values) if values and values[0] is not None else None

    async def device_timezone(self, device_id: str) -> str | None:
        records = await self._fetch(
            "reading a device's time zone",
            f"SELECT timezone FROM {DEVICE_TIMEZONES} WHERE device_id = ?",
            (device_id,),
        )
        return str(records[0][0]) if records else None

    async def set_device_timezone(self, device_id: str, timezone: str, at: datetime) -> None:
        async with self._transaction("storing a device's time zone") as conn:
            await conn.execute(
                f"INSERT INTO {DEVICE_TIMEZONES} (device_id, timezone, updated_at) "
                "VALUES (?, ?, ?) ON CONFLICT (device_id) DO UPDATE "
                "SET timezone = excluded.timezone, updated_at = excluded.updated_at",
                (device_id, timezone, micros_from_utc(at)),
            )

    async def devices(self) -> list[DeviceRecord]:
        records, lists = await self._fetch_with_lists(
            "listing devices", _DEVICES, (), EXTRA_INDEX + 1
        )
        devices: list[DeviceRecord] = []
        for record in records:
            if record[2] is None:  # a token but no stored reading yet
                devices.append(DeviceRecord(record[0], None, None))
                continue
            with self._undecodable("listing devices"):
                row = _from_sqlite(tuple(record)[1:], lists)
            devices.append(DeviceRecord(record[0], row[1], wire_from_row(row)))
        return devices

    # -- tokens -------------------------------------------------------------------

    async def add_token(self, record: TokenRecord) -> None:
        async with self._transaction("adding a token") as conn:
            await conn.execute(
                f"INSERT INTO {TOKENS} (token_hash, device_id, created_at) VALUES (?, ?, ?)",
                (record.token_hash, record.device_id, micros_from_utc(record.created_at)),
            )

    async def tokens(self) -> list[TokenRecord]:
        records = await self._fetch(
            "listing tokens",
            f"SELECT device_id, token_hash, created_at FROM {TOKENS} "
            "ORDER BY created_at, device_id",
        )
        return [TokenRecord(r[0], r[1], utc_from_micros(r[2])) for r in records]

    async def token_generation(self) -> int:
        records = await self._fetch(
            "reading the token generation",
            f"SELECT coalesce(max(generation), 0) FROM {TOKEN_GENERATION}",
        )
        return int(records[0][0])

    async def prune(
        self, readings_before: datetime | None, rollups_before: datetime | None, limit: int
    ) -> int:
        # Device by device, each a range of the primary key: there is no index on ts
        # alone, and a scan by ts would read every kept row of each device first.
        # Then, in what is left of the batch, the lists of extra's names no reading
        # can use any more (hub/storage/name_lists.py): counted, so a backlog of them
        # takes more batches too.
        deleted = 0
        async with self._transaction("deleting readings past retention") as conn:
            if readings_before is not None:
                cutoff = micros_from_utc(readings_before)
                for device_id in await _device_ids(conn, READINGS):
                    if deleted >= limit:
                        break
                    deleted += await _delete_oldest(conn, device_id, cutoff, limit - deleted)
            if rollups_before is not None:
                # Their sums kept first (hub/storage/pruned_energy.py), one range of
                # the primary key per device.
                bucket = micros_from_utc(rollups_before)
                for device_id in await _device_ids(conn, ENERGY_ROLLUP):
                    await conn.execute(_FOLD_PAST_RETENTION, (device_id, bucket))
                    await conn.execute(_DELETE_PAST_RETENTION, (device_id, bucket))
            gone = await delete_unused(conn, limit - deleted)
        self._lists.forget(gone)
        return deleted + len(gone)

    async def revoke_tokens(self, device_id: str) -> int:
        async with self._transaction("revoking tokens") as conn:
            cursor = await conn.execute(f"DELETE FROM {TOKENS} WHERE device_id = ?", (device_id,))
            return int(cursor.rowcount)
