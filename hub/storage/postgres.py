"""PostgreSQL (and TimescaleDB) storage through an asyncpg pool.

Every database call goes through :meth:`PostgresStorage._connection`, the one
place where asyncpg's and the socket's exceptions become ours: anything that
means "the database is not there right now" becomes ``StorageUnavailable``
(the writer then keeps its batch and retries), any other database error
``StorageError`` (:func:`is_unavailable` draws the line).

A batch is written in one transaction, idempotent on (device_id, ts)
(docs/architecture.md, "Guarantees": no duplicates), either as one ``INSERT ...
SELECT FROM unnest(...) ON CONFLICT DO NOTHING`` with one array parameter per
column, or by binary ``COPY`` (:class:`WriteMethod`; bench/storage_writer.py
measures both). COPY goes straight into the table when the batch holds nothing
stored before (the common case), and otherwise into a per-connection temporary
table and one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` from it
(:meth:`PostgresStorage._copy_direct`).

With ``PostgresOptions.write_thread`` (the default) batches are committed from
a thread of their own, through a pool of their own (hub/storage/loop_thread.py).

With TimescaleDB, a batch holding readings older than the rollup policy's window
has their minutes of ``readings_1m`` refreshed right after its commit, before the
batch counts as written (:meth:`PostgresStorage._refresh_rollup`,
hub/storage/late_rollup.py): the policy would never reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
from asyncpg import Record
from asyncpg.pool import PoolConnectionProxy

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
    ENERGY_COLUMNS,
    ENERGY_COMPLETE_INDEX,
    EXTRA_INDEX,
    FIELD_COLUMNS,
    FIELDS_OFFSET,
    JSON_INDEXES,
    NUMERIC_COLUMNS,
    READING_COLUMNS,
    ColumnKind,
    FieldColumn,
    Row,
    bucket_from_values,
    check_bucket,
    check_range,
    json_text,
    to_row,
    to_rows,
    wire_from_row,
)
from hub.storage.energy import (
    DEVICE_TIMEZONES,
    ENERGY_BUCKET,
    ENERGY_CAGG,
    ENERGY_ROLLUP,
    SUM_COLUMNS,
    EnergySums,
    check_edges,
    sums_sql,
    upsert_assignments,
)
from hub.storage.float32_codec import (
    MASK_COLUMN,
    SESSION_SETTINGS,
    decoding_list,
    encoding_select,
)
from hub.storage.late_rollup import (
    RefreshRange,
    bucket_start,
    late_ranges,
    policy_reach,
    retention_floor,
)
from hub.storage.loop_thread import LoopThread
from hub.storage.migrate import ExtensionStatus, SchemaState, migrate, parse_version
from hub.storage.pruned_energy import (
    CAGG_CHUNKS_END_SQL,
    DROP_CAGG_CHUNKS_SQL,
    LOCK_SQL,
    fold_sql,
    move_sql,
    total_sql,
)
from hub.storage.schema import (
    READINGS,
    ROLLUP,
    ROLLUP_WIDTH,
    TOKEN_GENERATION,
    TOKENS,
    TimescaleOptions,
)
from telemetry.backoff import Backoff, BackoffPolicy

logger = logging.getLogger(__name__)

STAGE: Final = "readings_stage"
# Rows per COPY into the stage. asyncpg encodes the records it is given in one
# go, without yielding to the event loop; a few COPYs per batch, each a round
# trip that lets the loop run, bound that stall to a few milliseconds.
COPY_SLICE: Final = 1000
_CLOSE_TIMEOUT_S: Final = 5.0
# After a batch failed to COPY straight into the table (it held a re-sent
# reading), batches go through the stage for this long.
DIRECT_COPY_PAUSE_S: Final = 10.0
_REFRESH_ROLLUP: Final = (
    f"CALL refresh_continuous_aggregate('{ROLLUP}', $1::timestamptz, $2::timestamptz)"
)
_REFRESH_ENERGY: Final = (
    f"CALL refresh_continuous_aggregate('{ENERGY_CAGG}', $1::timestamptz, $2::timestamptz)"
)


def energy_watermark_sql(timescale_version: str) -> str:
    """The energy aggregate's watermark (microseconds since the epoch): real-time
    aggregation reads raw only the rows at or after it; no row without the aggregate.

    TimescaleDB 2.12 moved its internal functions to ``_timescaledb_functions`` (and
    later releases drop the old ``_timescaledb_internal`` names).
    """
    functions = (
        "_timescaledb_functions"
        if parse_version(timescale_version) >= (2, 12)
        else "_timescaledb_internal"
    )
    return (
        f"SELECT {functions}.cagg_watermark(mat_hypertable_id) "
        "FROM _timescaledb_catalog.continuous_agg "
        "WHERE user_view_name = $1 AND user_view_schema = current_schema()"
    )


_OLDEST: Final = datetime.min.replace(tzinfo=UTC)
_OLDEST_MICROS: Final = (_OLDEST - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
_NEWEST_MICROS: Final = (datetime.max.replace(tzinfo=UTC) - _OLDEST) // timedelta(
    microseconds=1
) + _OLDEST_MICROS
# A refresh of late readings: its range holds at most a batch's time span of every
# device, but may have to read compressed chunks.
REFRESH_TIMEOUT_S: Final = 300.0
# The policy's run over an overlapping window: 50 ms doubling to 1 s, for up to 30 s.
REFRESH_RETRY: Final = BackoffPolicy(0.05, 1.0)
REFRESH_CONFLICT_WAIT_S: Final = 30.0


class WriteMethod(enum.Enum):
    """How a batch reaches the table."""

    UNNEST = "unnest"  # INSERT ... SELECT FROM unnest($1::text[], ...) ON CONFLICT DO NOTHING
    COPY = "copy"  # binary COPY into a temp table, then INSERT ... SELECT ... ON CONFLICT


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """Pool and schema settings; the defaults suit one hub on a small machine."""

    min_connections: int = 1
    # HTTP queries, token commands, and the writer's probe.
    max_connections: int = 4
    # Batches are committed from their own thread and event loop (hub/storage/loop_thread.py),
    # through a pool of their own: one connection per batch in flight (hub/batch_writer.py).
    write_thread: bool = True
    write_connections: int = 2
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 30.0
    # COPY: about twice the rows/s of UNNEST here (docs/benchmarks.md, "Storage writer").
    write_method: WriteMethod = WriteMethod.COPY
    timescale: TimescaleOptions = field(default_factory=TimescaleOptions)


# SQLSTATE classes that mean "not now" rather than "never" (PostgreSQL manual,
# appendix A): 08 connection exception, 57 operator intervention (admin
# shutdown, cannot connect now, statement timeout), 53 insufficient resources
# (too many connections, disk full), 40 transaction rollback (serialization
# failure, deadlock). Retrying such a batch is the right thing to do.
_UNAVAILABLE_POSTGRES_ERRORS: Final = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
)


# Everything the driver or the socket may raise; what is not "unavailable" is a StorageError.
_DRIVER_ERRORS: Final = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def is_unavailable(err: BaseException) -> bool:
    """Whether ``err`` means the database cannot be used right now (retry later)."""
    if isinstance(err, OSError | TimeoutError):  # refused, reset, unreachable, timed out
        return True
    if isinstance(err, _UNAVAILABLE_POSTGRES_ERRORS):
        return True
    if isinstance(err, asyncpg.InterfaceError):
        # "connection is closed", "pool is closing"; but asyncpg's client-side
        # DataError and ClientConfigurationError (both ValueErrors) are our bugs.
        return not isinstance(err, ValueError)
    # Protocol desynchronisation: that connection is finished, a new one will do.
    return isinstance(err, asyncpg.exceptions.InternalClientError)


def _pg_array_literal(values: Sequence[float]) -> str:
    # repr() of a float is the shortest exact decimal, and float8in parses it exactly.
    return "{" + ",".join(repr(float(v)) for v in values) + "}"


def _unnest_type(kind: ColumnKind) -> str:
    # Ragged float arrays cannot travel inside one 2-D array parameter (unnest
    # would flatten it), so they travel as array literals and are cast back.
    return {
        ColumnKind.NUMBER: "float8",
        ColumnKind.TEXT: "text",
        ColumnKind.NUMBER_LIST: "text",
    }[kind]


def _insert_unnest_sql(*, stand_ins: bool) -> str:
    types = ["text", "timestamptz", "int8", "timestamptz", "int2"]
    types += [_unnest_type(c.kind) for c in FIELD_COLUMNS]
    types += ["text", "text"]  # extra, devices: JSON text
    types += ["float8" if name != "energy_complete" else "bool" for name in ENERGY_COLUMNS]
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    select = [f"u.{name}" for name in READING_COLUMNS]
    for index, column in enumerate(FIELD_COLUMNS, start=FIELDS_OFFSET):
        if column.kind is ColumnKind.NUMBER_LIST:
            select[index] = f"u.{column.name}::float8[]"
    select[EXTRA_INDEX] = "u.extra::jsonb"
    select[DEVICES_INDEX] = "u.devices::jsonb"
    source = f"unnest({params}) AS u({', '.join(READING_COLUMNS)})"
    order = " ORDER BY u.device_id, u.ts ON CONFLICT (device_id, ts) DO NOTHING"
    if stand_ins:
        return (
            f"INSERT INTO {READINGS} ({', '.join(READING_COLUMNS)}, {MASK_COLUMN}) "
            + encoding_select(READING_COLUMNS, select, source)
            + order
        )
    return (
        f"INSERT INTO {READINGS} ({', '.join(READING_COLUMNS)}) "
        f"SELECT {', '.join(select)} FROM {source}" + order
    )


_INSERT_UNNEST: Final = _insert_unnest_sql(stand_ins=False)
# TimescaleDB: fields as float32 stand-ins (hub/storage/float32_codec.py).
_INSERT_UNNEST_STAND_INS: Final = _insert_unnest_sql(stand_ins=True)
_COLUMN_LIST: Final = ", ".join(READING_COLUMNS)
# What a query of whole rows selects: stand-ins turned back into what was sent.
_DECODED_COLUMNS: Final = decoding_list(READING_COLUMNS)
_COPY_COLUMNS: Final = list(READING_COLUMNS)
# Rows go in key order: two batches in flight at once that hold the same
# re-sent readings then take their key locks in the same order, never in a
# deadlock (which would only be retried, but costs a second).
_INSERT_FROM_STAGE: Final = (
    f"INSERT INTO {READINGS} ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {STAGE} "
    "ORDER BY device_id, ts ON CONFLICT (device_id, ts) DO NOTHING"
)
_INSERT_STAND_INS_WHOLE: Final = (
    f"INSERT INTO {READINGS} ({_COLUMN_LIST}, {MASK_COLUMN}) "
    + encoding_select(READING_COLUMNS, [f"s.{c}" for c in READING_COLUMNS], f"{STAGE} s")
)
# TimescaleDB's counterpart of a direct COPY: the stage's rows inserted whole, as
# stand-ins (a stored key fails it, as it fails a COPY); and of the stage path.
_INSERT_FROM_STAGE_STAND_INS: Final = (
    _INSERT_STAND_INS_WHOLE + " ORDER BY s.device_id, s.ts ON CONFLICT (device_id, ts) DO NOTHING"
)
_ENERGY_QUANTITY_COLUMNS: Final = SUM_COLUMNS[4:]
_ROLLUP_COLUMNS: Final = ", ".join(("device_id", "bucket", *SUM_COLUMNS))
_UPSERT_ROLLUP: Final = f"ON CONFLICT (device_id, bucket) DO UPDATE SET {upsert_assignments()}"


def _with_rollup(source: str, *, inserting: bool = True) -> str:
    """The rollup upsert of the rows ``source`` yields (device_id, ts, the energy columns).

    ``inserting``: ``source`` is an insert of readings (ON CONFLICT DO NOTHING),
    whose RETURNING yields only the rows inserted, never one skipped as a
    conflict, so a re-sent reading adds nothing (hub/storage/energy.py); one
    statement, one transaction. Buckets are upserted in key order, so two
    batches in flight lock them in the same order.
    """
    returning = ", ".join(("device_id", "ts", *ENERGY_COLUMNS))
    sums = ", ".join(f"sum(energy_{name})" for name in _ENERGY_QUANTITY_COLUMNS)
    rows = f"{source} RETURNING {returning}" if inserting else source
    return (
        f"WITH inserted AS ({rows}) "
        f"INSERT INTO {ENERGY_ROLLUP} ({_ROLLUP_COLUMNS}) "
        "SELECT device_id, date_bin('15 minutes', ts, TIMESTAMPTZ '1970-01-01 00:00:00+00'), "
        "count(*), count(CASE WHEN energy_complete = false THEN 1 END), "
        f"coalesce(sum(energy_span_s), 0), coalesce(max(energy_span_s), 0), {sums} "
        "FROM inserted WHERE energy_complete IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2 "
        + _UPSERT_ROLLUP
    )


_INSERT_UNNEST_ROLLUP: Final = _with_rollup(_INSERT_UNNEST)
_INSERT_FROM_STAGE_ROLLUP: Final = _with_rollup(_INSERT_FROM_STAGE)
# A batch COPYed straight into the table was inserted whole (a key stored before
# fails the COPY). Its rows are found again as the rows of its devices and time
# span that this very transaction inserted (their xmin is its xid: rows another
# batch committed in the same span are not), and summed by the server: nothing is
# sent twice, nothing is summed row by row in Python.
_ROLLUP_COPIED: Final = _with_rollup(
    f"SELECT device_id, ts, {', '.join(ENERGY_COLUMNS)} FROM {READINGS} "
    "WHERE device_id = ANY($1::text[]) AND ts >= $2 AND ts <= $3 "
    "AND xmin::text::bigint = pg_current_xact_id()::text::numeric % 4294967296",
    inserting=False,
)


def _energy_sql(relation: str) -> str:
    """Sums per interval: ``width_bucket`` numbers each bucket by the interval holding it."""
    return (
        f"SELECT width_bucket(bucket, $2::timestamptz[]) AS i, {sums_sql()} FROM {relation} "
        "WHERE device_id = $1 AND bucket >= $3 AND bucket < $4 GROUP BY 1 ORDER BY 1"
    )


# A device's all-time sums (hub/storage/pruned_energy.py), by whether TimescaleDB is in use.
_TOTAL: Final = {True: total_sql(ENERGY_CAGG, "$1"), False: total_sql(ENERGY_ROLLUP, "$1")}
# Retention of the energy buckets, their sums kept (hub/storage/pruned_energy.py): plain
# PostgreSQL moves every listed device's old rollup rows in one statement; TimescaleDB
# folds the aggregate's buckets before the end of the chunks it then drops.
_MOVE_PAST_RETENTION: Final = move_sql("device_id = ANY($1::text[]) AND bucket < $2")
_FOLD_CAGG_CHUNKS: Final = fold_sql(ENERGY_CAGG, "bucket < $1")
_SELECT_READINGS: Final = (
    f"SELECT {_DECODED_COLUMNS} FROM {READINGS} "
    "WHERE device_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4"
)
_SELECT_NEWEST: Final = _SELECT_READINGS.replace("ORDER BY ts", "ORDER BY ts DESC")


def _raw_bucket_value(column: FieldColumn) -> str:
    """A bucket's value of one column: the mean, or a counter's last value in the bucket."""
    if column.cumulative:
        name = column.name
        return f"(array_agg({name} ORDER BY ts DESC) FILTER (WHERE {name} IS NOT NULL))[1]"
    return f"avg({column.name})"


def _rollup_bucket_value(column: FieldColumn) -> str:
    """Like :func:`_raw_bucket_value` over the rollup; a counter's last value is read raw.

    The rollup holds means and counts only, so a counter's last value comes
    from one backward seek on the primary key per bucket.
    """
    if not column.cumulative:
        return f"b.{column.name}"
    return (
        f"(SELECT r.{column.name} FROM {READINGS} r WHERE r.device_id = $1 "
        "AND r.ts >= greatest(b.b_ts, $2) AND r.ts < least(b.b_ts + $4::interval, $3) "
        f"AND r.{column.name} IS NOT NULL ORDER BY r.ts DESC LIMIT 1)"
    )


_RAW_BUCKETS: Final = (
    "SELECT date_bin($4::interval, ts, $5::timestamptz) AS bucket, "
    + ", ".join(_raw_bucket_value(c) for c in NUMERIC_COLUMNS)
    + f" FROM {READINGS} WHERE device_id = $1 AND ts >= $2 AND ts < $3 "
    "GROUP BY 1 ORDER BY 1"
)
# Minute rollups re-aggregated exactly: each minute's average weighted by its count.
_ROLLUP_BUCKETS: Final = (
    "WITH b AS (SELECT time_bucket($4::interval, bucket, $5::timestamptz) AS b_ts, "
    + ", ".join(
        f"sum({c.name} * n_{c.name}) / nullif(sum(n_{c.name}), 0) AS {c.name}"
        for c in NUMERIC_COLUMNS
        if not c.cumulative
    )
    + f" FROM {ROLLUP} WHERE device_id = $1 AND bucket >= $2 AND bucket < $3 "
    "GROUP BY 1) SELECT b.b_ts, "
    + ", ".join(_rollup_bucket_value(c) for c in NUMERIC_COLUMNS)
    + " FROM b ORDER BY 1"
)
# Distinct device ids by skipping through the primary key one id at a time
# (a "loose index scan"), then each device's newest row by a backward index
# scan: O(devices x log rows), never a scan of the table.
_DEVICES: Final = f"""
WITH RECURSIVE ids AS (
    (SELECT device_id FROM {READINGS} ORDER BY device_id LIMIT 1)
    UNION ALL
    SELECT (SELECT r.device_id FROM {READINGS} r WHERE r.device_id > ids.device_id
            ORDER BY r.device_id LIMIT 1)
    FROM ids WHERE ids.device_id IS NOT NULL
), known AS (
    SELECT device_id FROM ids WHERE device_id IS NOT NULL
    UNION
    SELECT device_id FROM {TOKENS}
)
SELECT known.device_id AS known_id, newest.*
FROM known LEFT JOIN LATERAL (
    SELECT {_DECODED_COLUMNS} FROM {READINGS} r WHERE r.device_id = known.device_id
    ORDER BY r.ts DESC LIMIT 1
) newest ON TRUE
ORDER BY known.device_id"""


def _device_ids_sql(table: str) -> str:
    """Distinct device ids of ``table`` by a loose index scan of its primary key."""
    return f"""
WITH RECURSIVE ids AS (
    (SELECT device_id FROM {table} ORDER BY device_id LIMIT 1)
    UNION ALL
    SELECT (SELECT t.device_id FROM {table} t WHERE t.device_id > ids.device_id
            ORDER BY t.device_id LIMIT 1)
    FROM ids WHERE ids.device_id IS NOT NULL
) SELECT device_id FROM ids WHERE device_id IS NOT NULL"""


# Up to $3 of a device's oldest readings before $2, as one range of the primary key:
# everything before the ($3 + 1)-th oldest.
_DELETE_OLDEST: Final = (
    f"DELETE FROM {READINGS} WHERE device_id = $1 AND ts < coalesce("
    f"(SELECT ts FROM {READINGS} WHERE device_id = $1 AND ts < $2 ORDER BY ts "
    "OFFSET $3 LIMIT 1), $2)"
)


async def _copy_slices(conn: PoolConnectionProxy[Record], table: str, flat: Sequence[Row]) -> None:
    for start in range(0, len(flat), COPY_SLICE):
        await conn.copy_records_to_table(
            table, records=flat[start : start + COPY_SLICE], columns=_COPY_COLUMNS
        )


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT_S)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        logger.warning("closing the pool failed (%s); terminating its connections", err)
        pool.terminate()


def _copied_span(flat: Sequence[Row]) -> tuple[list[str], datetime, datetime]:
    """The devices and the time span of a batch's rows that carry energy."""
    rows = [r for r in flat if r[ENERGY_COMPLETE_INDEX] is not None]
    return sorted({r[0] for r in rows}), min(r[1] for r in rows), max(r[1] for r in rows)


def _minute_aligned(value: datetime) -> bool:
    return value.second == 0 and value.microsecond == 0


def _row_from_record(record: Sequence[Any], offset: int = 0) -> Row:
    values = list(record[offset : offset + len(READING_COLUMNS)])
    for index in JSON_INDEXES:
        if values[index] is not None:
            values[index] = json.loads(values[index])
    return tuple(values)


class PostgresStorage:
    """The :class:`hub.storage.base.Storage` interface on PostgreSQL / TimescaleDB."""

    def __init__(self, url: str, options: PostgresOptions | None = None) -> None:
        self._url = url
        self._options = options or PostgresOptions()
        self._pool: asyncpg.Pool | None = None
        self._writes: LoopThread | None = None
        self._write_pool: asyncpg.Pool | None = None
        self._direct_copy_after = 0.0  # time.monotonic() from which batches try a direct COPY
        self._state: SchemaState | None = None
        self._refresh_lock: asyncio.Lock | None = None

    @property
    def timescale(self) -> ExtensionStatus:
        """Whether TimescaleDB is in use (and why not); known once :meth:`open` returned."""
        if self._state is None:
            return ExtensionStatus(False, reason="storage not open")
        return self._state.timescale

    @property
    def description(self) -> str:
        timescale = self.timescale
        if timescale.present:
            return f"PostgreSQL with TimescaleDB {timescale.version}"
        return "PostgreSQL"

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        options = self._options
        async with self._translated("migrating the schema"):
            conn = await asyncpg.connect(
                self._url,
                timeout=options.connect_timeout_s,
                command_timeout=options.command_timeout_s,
            )
            try:
                self._state = await migrate(conn, options.timescale)
            finally:
                await conn.close()
        async with self._translated("connecting"):
            self._pool = await self._create_pool(
                options.min_connections, options.max_connections, writes=not options.write_thread
            )
        if options.write_thread:
            self._writes = LoopThread("ems-storage-writes")
            self._writes.start()
            try:
                async with self._translated("connecting the writer"):
                    self._write_pool = await self._writes.run(
                        self._create_pool(1, options.write_connections, writes=True)
                    )
            except BaseException:
                await self.close()
                raise
        logger.info("storage: %s", self.description)

    async def _create_pool(self, min_size: int, max_size: int, *, writes: bool) -> asyncpg.Pool:
        """A pool; ``writes``: its connections write batches, so COPY needs their stage table."""
        options = self._options
        stage = writes and options.write_method is WriteMethod.COPY
        return await asyncpg.create_pool(
            self._url,
            min_size=min_size,
            max_size=max_size,
            timeout=options.connect_timeout_s,
            command_timeout=options.command_timeout_s,
            init=self._create_stage if stage else None,
            server_settings=SESSION_SETTINGS,
        )

    async def close(self) -> None:
        self._refresh_lock = None  # bound to the loop that wrote; a reopen may write on another
        writes, write_pool = self._writes, self._write_pool
        self._writes = self._write_pool = None
        if writes is not None:
            if write_pool is not None:
                with contextlib.suppress(RuntimeError):  # the thread is gone already
                    await writes.run(_close_pool(write_pool))
            await writes.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            await _close_pool(pool)

    @staticmethod
    async def _create_stage(conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE {READINGS}) ON COMMIT DELETE ROWS"
        )

    # -- the one place errors are translated ---------------------------------

    @contextlib.asynccontextmanager
    async def _translated(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except _DRIVER_ERRORS as err:
            if is_unavailable(err):
                raise StorageUnavailable(f"{what}: {type(err).__name__}: {err}") from err
            raise StorageError(f"{what}: {type(err).__name__}: {err}") from err

    @contextlib.asynccontextmanager
    async def _connection(
        self, what: str, *, writer: bool = False
    ) -> AsyncIterator[PoolConnectionProxy[Record]]:
        async with self._translated(what):
            pool = self._write_pool if writer else self._pool
            if pool is None:
                raise StorageUnavailable(f"{what}: storage is not open")
            async with pool.acquire() as conn:
                yield conn

    async def check(self) -> None:
        async with self._connection("checking the database") as conn:
            await conn.fetchval("SELECT 1")

    # -- writes ----------------------------------------------------------------

    async def write_readings(self, rows: Sequence[StoredReading]) -> None:
        await self.write_prepared(await to_rows(rows, json_text))

    def prepare(self, stored: StoredReading) -> Row:
        return to_row(stored, json_text)

    async def write_prepared(self, flat: Sequence[Row]) -> None:
        if not flat:
            return
        writes = self._writes
        if writes is None:
            await self._write(flat, writer=False)
            return
        try:
            await writes.run(self._write(flat, writer=True))
        except RuntimeError as err:  # closed under us
            raise StorageUnavailable(f"writing {len(flat)} readings: {err}") from err

    @property
    def _writer_rollup(self) -> bool:
        """Whether the writer keeps ``energy_rollup`` (plain PostgreSQL; not TimescaleDB)."""
        state = self._state
        return state is not None and not state.timescale.present

    async def _write(self, flat: Sequence[Row], *, writer: bool) -> None:
        # Rollup work only for batches that carry energy: others cost what they always did.
        rollup = self._writer_rollup and any(r[ENERGY_COMPLETE_INDEX] is not None for r in flat)
        async with self._connection(f"writing {len(flat)} readings", writer=writer) as conn:
            await self._insert(conn, flat, rollup=rollup)
        if self.timescale.present:
            now = datetime.now(UTC)
            options = self._options.timescale
            ranges = late_ranges(
                (row[1] for row in flat),
                policy_reach(options, now),
                retention_floor(options, now),
            )
            if ranges:
                await self._refresh_rollup(ROLLUP, ranges, writer=writer)
            energy_times = [row[1] for row in flat if row[ENERGY_COMPLETE_INDEX] is not None]
            # Readings in the open quarter hour are never below the watermark (a
            # refresh stops at the last whole bucket): a live batch asks nothing.
            if energy_times and min(energy_times) < bucket_start(now, ENERGY_BUCKET):
                watermark = await self._energy_watermark(writer=writer)
                energy_ranges = late_ranges(
                    energy_times,
                    watermark,
                    retention_floor(options, now),
                    width=ENERGY_BUCKET,
                )
                if energy_ranges:
                    await self._refresh_rollup(ENERGY_CAGG, energy_ranges, writer=writer)

    async def _energy_watermark(self, *, writer: bool) -> datetime:
        """Where ``energy_15m``'s real-time reading starts; the oldest instant if unknown."""
        async with self._connection(f"reading {ENERGY_CAGG}'s watermark", writer=writer) as conn:
            micros = await conn.fetchval(energy_watermark_sql(self.timescale.version), ENERGY_CAGG)
        if micros is None:
            return _OLDEST
        # An empty aggregate's watermark is the type's minimum, far before datetime.min.
        clamped = min(max(int(micros), _OLDEST_MICROS), _NEWEST_MICROS)
        return _OLDEST + timedelta(microseconds=clamped - _OLDEST_MICROS)

    async def _insert(
        self, conn: PoolConnectionProxy[Record], flat: Sequence[Row], *, rollup: bool
    ) -> None:
        # TimescaleDB stores fields as float32 stand-ins where that is exact
        # (hub/storage/float32_codec.py): the server converts them, so every row
        # passes through the stage and an INSERT ... SELECT. The writer's rollup is
        # plain PostgreSQL's only (TimescaleDB's is an aggregate).
        stand_ins = self.timescale.present
        if self._options.write_method is WriteMethod.COPY:
            if time.monotonic() >= self._direct_copy_after and await self._copy_direct(
                conn, flat, rollup=rollup, stand_ins=stand_ins
            ):
                return
            if stand_ins:
                insert = _INSERT_FROM_STAGE_STAND_INS
            else:
                insert = _INSERT_FROM_STAGE_ROLLUP if rollup else _INSERT_FROM_STAGE
            async with conn.transaction():
                await _copy_slices(conn, STAGE, flat)
                await conn.execute(insert)
        else:
            if stand_ins:
                insert = _INSERT_UNNEST_STAND_INS
            else:
                insert = _INSERT_UNNEST_ROLLUP if rollup else _INSERT_UNNEST
            async with conn.transaction():
                await conn.execute(insert, *self._unnest_args(flat))

    async def _refresh_rollup(
        self, view: str, ranges: Sequence[RefreshRange], *, writer: bool
    ) -> None:
        """Compute a continuous aggregate's buckets of late readings again
        (hub/storage/late_rollup.py): ``readings_1m``'s minutes or ``energy_15m``'s
        quarter hours.

        After the commit, outside any transaction (TimescaleDB refuses a refresh inside
        one). Batches in flight take turns, since TimescaleDB refuses a refresh while
        another one over an overlapping window runs; the policy's own run may still
        overlap, and then the refresh is tried again for a while, after which the batch
        counts as unavailable and the writer retries it whole (its rows are stored
        already; the retry stores nothing twice and refreshes again).
        """
        what = f"refreshing {view} for late readings"
        sql = _REFRESH_ROLLUP if view == ROLLUP else _REFRESH_ENERGY
        if self._refresh_lock is None:
            self._refresh_lock = asyncio.Lock()  # made on the loop that writes
        async with self._refresh_lock, self._connection(what, writer=writer) as conn:
            for refresh in ranges:
                retry = Backoff(REFRESH_RETRY)
                deadline = time.monotonic() + REFRESH_CONFLICT_WAIT_S
                while True:
                    try:
                        await conn.execute(
                            sql,
                            refresh.start,
                            refresh.end,
                            timeout=REFRESH_TIMEOUT_S,
                        )
                    except asyncpg.LockNotAvailableError as err:
                        if time.monotonic() >= deadline:
                            raise StorageUnavailable(f"{what}: {err}") from err
                        await asyncio.sleep(retry.next_delay())
                        continue
                    break
                logger.debug("refreshed %s over [%s, %s)", view, refresh.start, refresh.end)

    async def _copy_direct(
        self,
        conn: PoolConnectionProxy[Record],
        flat: Sequence[Row],
        *,
        rollup: bool,
        stand_ins: bool,
    ) -> bool:
        """COPY the batch straight into the table; False if it must go through the stage.

        The common batch holds no reading stored before, and then the stage's
        second write and ``INSERT ... SELECT`` are pure cost (about half the
        writer's time, docs/benchmarks.md "Storage writer"). COPY cannot skip a
        duplicate, so a batch holding one (a re-send after a lost ack) fails
        whole, is rolled back, and goes through the stage with ``ON CONFLICT DO
        NOTHING``: idempotence is kept either way. After such a failure the
        stage is used for a while, since re-sends come in runs (an edge catching
        up after a reconnect).

        ``stand_ins`` (TimescaleDB): the server makes the stand-ins, so the batch
        goes through the stage, then in whole without ``ON CONFLICT``: the
        speculative insertion that clause costs is most of the stage path's
        (docs/benchmarks.md, "Storage size").
        """
        try:
            async with conn.transaction():
                if stand_ins:
                    await _copy_slices(conn, STAGE, flat)
                    await conn.execute(_INSERT_STAND_INS_WHOLE)
                else:
                    await _copy_slices(conn, READINGS, flat)
                if rollup:
                    # The COPY went through, so every row was inserted, once.
                    await conn.execute(_ROLLUP_COPIED, *_copied_span(flat))
        except asyncpg.PostgresError as err:
            if is_unavailable(err) and not isinstance(err, asyncpg.DeadlockDetectedError):
                raise
            # A duplicate (23505), a deadlock with the other batch in flight over
            # the same re-sent rows, or anything else the plain path may handle.
            if not isinstance(err, asyncpg.UniqueViolationError):
                logger.info("direct COPY failed (%s): writing through the stage", err)
            self._direct_copy_after = time.monotonic() + DIRECT_COPY_PAUSE_S
            return False
        return True

    @staticmethod
    def _unnest_args(rows: Sequence[Row]) -> list[list[Any]]:
        columns = [list(column) for column in zip(*rows, strict=True)]
        for index, column in enumerate(FIELD_COLUMNS, start=FIELDS_OFFSET):
            if column.kind is ColumnKind.NUMBER_LIST:
                columns[index] = [
                    None if v is None else _pg_array_literal(v) for v in columns[index]
                ]
        return columns

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
        sql = _SELECT_NEWEST if newest_first else _SELECT_READINGS
        async with self._connection("reading readings") as conn:
            records = await conn.fetch(sql, device_id, start, end, limit)
        return [wire_from_row(_row_from_record(tuple(record))) for record in records]

    def _use_rollup(self, start: datetime, end: datetime, bucket: timedelta) -> bool:
        state = self._state
        return (
            state is not None
            and state.rollup_usable
            and bucket % ROLLUP_WIDTH == timedelta(0)
            # Whole minutes at both ends: the rollup rows inside [start, end)
            # cover exactly the raw rows inside it.
            and _minute_aligned(start)
            and _minute_aligned(end)
        )

    async def buckets(
        self, device_id: str, start: datetime, end: datetime, bucket: timedelta
    ) -> list[dict[str, Any]]:
        check_range(start, end)
        check_bucket(bucket)
        sql = _ROLLUP_BUCKETS if self._use_rollup(start, end, bucket) else _RAW_BUCKETS
        async with self._connection("averaging readings") as conn:
            records = await conn.fetch(sql, device_id, start, end, bucket, BUCKET_ORIGIN)
        return [bucket_from_values(record[0], tuple(record)[1:]) for record in records]

    async def energy(self, device_id: str, edges: Sequence[datetime]) -> list[EnergySums | None]:
        check_edges(edges)
        state = self._state
        relation = ENERGY_CAGG if state is not None and state.timescale.present else ENERGY_ROLLUP
        async with self._connection("adding up energy") as conn:
            records = await conn.fetch(
                _energy_sql(relation), device_id, list(edges[:-1]), edges[0], edges[-1]
            )
        out: list[EnergySums | None] = [None] * (len(edges) - 1)
        for record in records:
            out[record[0] - 1] = EnergySums.from_values(tuple(record)[1:])
        return out

    async def energy_total(self, device_id: str) -> EnergySums | None:
        state = self._state
        timescale = state is not None and state.timescale.present
        async with self._connection("adding up all energy") as conn:
            record = await conn.fetchrow(_TOTAL[timescale], device_id)
        values = tuple(record) if record is not None else ()
        return EnergySums.from_values(values) if values and values[0] is not None else None

    async def device_timezone(self, device_id: str) -> str | None:
        async with self._connection("reading a device's time zone") as conn:
            zone = await conn.fetchval(
                f"SELECT timezone FROM {DEVICE_TIMEZONES} WHERE device_id = $1", device_id
            )
        return None if zone is None else str(zone)

    async def set_device_timezone(self, device_id: str, timezone: str, at: datetime) -> None:
        async with self._connection("storing a device's time zone") as conn:
            await conn.execute(
                f"INSERT INTO {DEVICE_TIMEZONES} (device_id, timezone, updated_at) "
                "VALUES ($1, $2, $3) ON CONFLICT (device_id) DO UPDATE "
                "SET timezone = excluded.timezone, updated_at = excluded.updated_at",
                device_id,
                timezone,
                at,
            )

    async def devices(self) -> list[DeviceRecord]:
        async with self._connection("listing devices") as conn:
            records = await conn.fetch(_DEVICES)
        devices: list[DeviceRecord] = []
        for record in records:
            row = _row_from_record(tuple(record), offset=1)
            if row[1] is None:  # a token but no stored reading yet
                devices.append(DeviceRecord(record["known_id"], None, None))
            else:
                devices.append(DeviceRecord(record["known_id"], row[1], wire_from_row(row)))
        return devices

    # -- tokens -------------------------------------------------------------------

    async def add_token(self, record: TokenRecord) -> None:
        async with self._connection("adding a token") as conn:
            await conn.execute(
                f"INSERT INTO {TOKENS} (token_hash, device_id, created_at) VALUES ($1, $2, $3)",
                record.token_hash,
                record.device_id,
                record.created_at,
            )

    async def tokens(self) -> list[TokenRecord]:
        async with self._connection("listing tokens") as conn:
            records = await conn.fetch(
                f"SELECT device_id, token_hash, created_at FROM {TOKENS} "
                "ORDER BY created_at, device_id"
            )
        return [TokenRecord(r["device_id"], r["token_hash"], r["created_at"]) for r in records]

    async def token_generation(self) -> int:
        async with self._connection("reading the token generation") as conn:
            generation = await conn.fetchval(
                f"SELECT coalesce(max(generation), 0) FROM {TOKEN_GENERATION}"
            )
        return int(generation)

    async def prune(
        self, readings_before: datetime | None, rollups_before: datetime | None, limit: int
    ) -> int:
        if self.timescale.present:
            # Its retention policies drop the readings' chunks (hub/storage/schema.py);
            # the energy aggregate's chunks go here, their sums kept first.
            if rollups_before is not None:
                await self._drop_energy_chunks(rollups_before)
            return 0
        deleted = 0
        async with (
            self._connection("deleting readings past retention") as conn,
            conn.transaction(),
        ):
            if readings_before is not None:
                for device_id in await conn.fetch(_device_ids_sql(READINGS)):
                    if deleted >= limit:
                        break
                    status = await conn.execute(
                        _DELETE_OLDEST, device_id[0], readings_before, limit - deleted
                    )
                    deleted += int(status.split()[-1])
            if rollups_before is not None:
                # Every device's bucket range: a loose index scan for the ids, then
                # one range of the primary key each (ANY of the ids).
                devices = [r[0] for r in await conn.fetch(_device_ids_sql(ENERGY_ROLLUP))]
                await conn.execute(LOCK_SQL)
                await conn.execute(_MOVE_PAST_RETENTION, devices, rollups_before)
        return deleted

    async def _drop_energy_chunks(self, before: datetime) -> None:
        """TimescaleDB: fold, then drop, the energy aggregate's chunks ending by ``before``."""
        async with (
            self._connection("dropping energy buckets past retention") as conn,
            conn.transaction(),
        ):
            await conn.execute(LOCK_SQL)
            end = await conn.fetchval(CAGG_CHUNKS_END_SQL, before)
            if end is None:
                return
            await conn.execute(_FOLD_CAGG_CHUNKS, end)
            await conn.execute(DROP_CAGG_CHUNKS_SQL, end)

    async def revoke_tokens(self, device_id: str) -> int:
        async with self._connection("revoking tokens") as conn:
            status = await conn.execute(f"DELETE FROM {TOKENS} WHERE device_id = $1", device_id)
        return int(status.split()[-1])  # "DELETE n"
