"""Applies the schema history (:mod:`hub.storage.history`) on PostgreSQL, then TimescaleDB.

Runs on one dedicated connection, under a session-level advisory lock, so two
hubs starting together take turns instead of racing on ``CREATE``. Session
level (not transaction level) because a continuous aggregate cannot be created
inside a transaction block.

Each versioned migration runs in its own transaction and records its version in
the same transaction, so a hub killed half-way leaves either all of a migration
or none of it.

TimescaleDB is optional: :func:`try_create_extension` treats any failure to
create it (not installed, no privilege) as "not present", inside its own
transaction, so the connection is never left in an aborted transaction. A
server that has the extension's files but does not preload its library is
detected before trying: there ``CREATE EXTENSION timescaledb`` does not fail
with an ERROR but ends the session (FATAL "extension "timescaledb" must be
preloaded", which TimescaleDB raises on purpose), and no transaction survives that.
"""

from __future__ import annotations

import logging
import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import asyncpg

from hub.storage.base import StorageConfigError
from hub.storage.energy import ENERGY_CAGG, ENERGY_ROLLUP, rebuild_rollup_sql
from hub.storage.history import Dialect, Migration, run_migrations
from hub.storage.schema import (
    ADVISORY_LOCK_SQL,
    ADVISORY_UNLOCK_SQL,
    PLAIN_STATEMENTS,
    READINGS,
    ROLLUP,
    VERSION_TABLE,
    TimescaleMode,
    TimescaleOptions,
    rollup_columns,
    timescale_steps,
)

logger = logging.getLogger(__name__)

TIMESCALE = "timescaledb"
# create_hypertable(..., by_range(...)) exists from 2.13 (the older form is deprecated there).
BY_RANGE_SINCE = (2, 13)
# Switching TimescaleDB on over a table that already holds readings moves them into
# chunks (create_hypertable(migrate_data => TRUE)) and materialises the rollup
# (WITH DATA): minutes on a large table, far past the connection's 30 s command
# timeout, which would cancel and roll back the step on every start.
TIMESCALE_STEP_TIMEOUT_S = 3600.0
MIN_SERVER_VERSION = 14  # date_bin() (PostgreSQL 14 release notes)
# TimescaleDB's loader defines this setting in every session once it is in
# shared_preload_libraries (src/loader/bgw_counter.c). A value merely written in
# postgresql.conf without the library is a placeholder: hidden from pg_settings,
# and of type string, so it does not count. (shared_preload_libraries itself is
# readable only by superusers and pg_read_all_settings.)
TIMESCALE_PRELOADED_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_settings "
    "WHERE name = 'timescaledb.max_background_workers' AND vartype = 'integer')"
)


@dataclass(frozen=True, slots=True)
class ExtensionStatus:
    """Whether an extension is usable, its version, and why not when it is not."""

    present: bool
    version: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What :func:`migrate` found and left: the schema, TimescaleDB, the rollup."""

    schema: str
    version: int
    timescale: ExtensionStatus
    rollup_usable: bool  # readings_1m exists with every numeric column


def parse_version(text: str) -> tuple[int, ...]:
    """``"2.14.2"`` -> ``(2, 14, 2)``; a suffix such as ``-dev`` is ignored."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("-", 1)[0]))


async def try_create_extension(
    conn: asyncpg.Connection, name: str, *, check_available: bool = True
) -> ExtensionStatus:
    """Create ``name`` if it is not there; any failure means "not present".

    ``check_available=False`` skips the catalogue look-up and always tries, which
    is how the failure path is exercised on a server without the extension.
    """
    installed = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = $1", name)
    if installed is not None:
        return ExtensionStatus(True, installed)
    if check_available:
        available = await conn.fetchval(
            "SELECT default_version FROM pg_available_extensions WHERE name = $1", name
        )
        if available is None:
            return ExtensionStatus(
                False, reason=f"extension {name!r} is not installed on the server"
            )
    try:
        # Its own transaction: a failure rolls back only this, never the session.
        async with conn.transaction():
            await conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}"')
    except asyncpg.PostgresError as err:
        return ExtensionStatus(False, reason=f"CREATE EXTENSION {name} failed: {err}")
    version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = $1", name)
    return ExtensionStatus(True, str(version))


async def _table_columns(conn: asyncpg.Connection, schema: str, table: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = $2",
        schema,
        table,
    )
    return {row["column_name"] for row in rows}


class _PostgresTarget:
    """:class:`hub.storage.history.SchemaTarget` on one connection, in its current schema."""

    dialect = Dialect.POSTGRES
    where = "the database"

    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    async def execute(self, sql: str) -> None:
        await self._conn.execute(sql)

    async def applied_versions(self) -> set[int]:
        rows = await self._conn.fetch(f"SELECT version FROM {VERSION_TABLE}")
        return {row["version"] for row in rows}

    async def record(self, migration: Migration) -> None:
        await self._conn.execute(
            f"INSERT INTO {VERSION_TABLE} (version, description) VALUES ($1, $2)",
            migration.version,
            migration.description,
        )

    async def readings_columns(self) -> set[str]:
        return await _table_columns(self._conn, self._schema, READINGS)

    def transaction(self) -> AbstractAsyncContextManager[None]:
        return self._conn.transaction()


async def _timescale_preloaded(conn: asyncpg.Connection) -> bool:
    """Whether the server preloads TimescaleDB's library; raise if it is needed but not preloaded.

    Without the preloaded library, any TimescaleDB call (CREATE EXTENSION, a hypertable's
    insert trigger, the extension's DDL event triggers) ends the session with FATAL.
    """
    if await conn.fetchval(TIMESCALE_PRELOADED_SQL):
        return True
    installed = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = $1", TIMESCALE
    )
    if installed is not None:
        raise StorageConfigError(
            f"TimescaleDB {installed} is installed in this database but the server does "
            "not preload it: add timescaledb to shared_preload_libraries and restart PostgreSQL"
        )
    return False


async def _timescale(
    conn: asyncpg.Connection, mode: TimescaleMode, *, preloaded: bool
) -> ExtensionStatus:
    if mode is TimescaleMode.OFF:
        return ExtensionStatus(False, reason="TimescaleDB turned off by configuration")
    if preloaded:
        status = await try_create_extension(conn, TIMESCALE)
    else:
        available = await conn.fetchval(
            "SELECT default_version FROM pg_available_extensions WHERE name = $1", TIMESCALE
        )
        status = ExtensionStatus(
            False,
            reason=f"extension {TIMESCALE!r} is not installed on the server"
            if available is None
            else f"extension {TIMESCALE!r} is installed on the server but not in "
            "shared_preload_libraries",
        )
    if not status.present and mode is TimescaleMode.REQUIRED:
        raise StorageConfigError(f"TimescaleDB is required but {status.reason}")
    return status


async def _rebuild_energy_rollup(conn: asyncpg.Connection, schema: str) -> None:
    """Without TimescaleDB, but its energy aggregate is there: it kept the sums until now.

    Only with the extension still usable (turned off by configuration): the
    writer's table missed what was written meanwhile, so it is computed again
    from the readings (and, for readings retention dropped, from the aggregate)
    and the aggregate dropped (hub/storage/energy.py).
    """
    kind = await conn.fetchval(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2",
        schema,
        ENERGY_CAGG,
    )
    if kind is None:
        return
    logger.warning(
        "%s is here but TimescaleDB is not in use: computing %s again from the readings",
        ENERGY_CAGG,
        ENERGY_ROLLUP,
    )
    async with conn.transaction():
        for sql in rebuild_rollup_sql(READINGS):
            await conn.execute(sql, timeout=TIMESCALE_STEP_TIMEOUT_S)


async def migrate(conn: asyncpg.Connection, options: TimescaleOptions) -> SchemaState:
    """Bring the schema of ``conn``'s current schema up to date; safe to run any number of times."""
    server_major = conn.get_server_version().major
    if server_major < MIN_SERVER_VERSION:
        raise StorageConfigError(
            f"PostgreSQL {server_major} is too old: the hub needs {MIN_SERVER_VERSION} or newer"
        )
    schema = await conn.fetchval("SELECT current_schema()")
    if schema is None:
        raise StorageConfigError("the search_path names no existing schema to create tables in")
    await conn.execute(ADVISORY_LOCK_SQL, schema)
    try:
        preloaded = await _timescale_preloaded(conn)
        version = await run_migrations(_PostgresTarget(conn, schema))
        timescale = await _timescale(conn, options.mode, preloaded=preloaded)
        rollup_usable = False
        if timescale.present:
            compression_enabled = await conn.fetchval(
                "SELECT compression_enabled FROM timescaledb_information.hypertables "
                "WHERE hypertable_schema = $1 AND hypertable_name = $2",
                schema,
                READINGS,
            )
            steps = timescale_steps(
                options,
                by_range_api=parse_version(timescale.version) >= BY_RANGE_SINCE,
                compression_enabled=bool(compression_enabled),
            )
            # One statement at a time, outside any transaction block (continuous
            # aggregates refuse to be created inside one).
            logger.info("TimescaleDB %s: applying %d schema steps", timescale.version, len(steps))
            for sql, args in steps:
                await conn.execute(sql, *args, timeout=TIMESCALE_STEP_TIMEOUT_S)
            rollup_usable = rollup_columns() <= await _table_columns(conn, schema, ROLLUP)
            if not rollup_usable:
                logger.warning("%s lacks columns for newer fields: buckets read raw rows", ROLLUP)
            logger.info("TimescaleDB %s: hypertable, compression and rollups", timescale.version)
        else:
            for sql in PLAIN_STATEMENTS:
                await conn.execute(sql)
            await _rebuild_energy_rollup(conn, schema)
            logger.info("plain PostgreSQL storage (%s)", timescale.reason)
        return SchemaState(schema, version, timescale, rollup_usable)
    finally:
        if not conn.is_closed():
            await conn.execute(ADVISORY_UNLOCK_SQL, schema)
