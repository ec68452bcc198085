"""Building blocks for storage and writer tests: readings, fresh schemas, opened backends."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from annotated_types import Ge, Le

from hub.storage.base import Storage, StoredReading
from hub.storage.history import MIGRATIONS, Dialect
from hub.storage.postgres import PostgresOptions, PostgresStorage, WriteMethod
from hub.storage.schema import TimescaleMode, TimescaleOptions
from hub.storage.sqlite import SqliteStorage
from telemetry import SECTION_MODELS, Reading

# Plain PostgreSQL with each write method, and TimescaleDB (required: a server
# without it fails the test rather than passing on plain PostgreSQL).
BACKENDS = ("sqlite", "postgres-unnest", "postgres-copy", "timescaledb")
TIMESCALE_BACKEND = "timescaledb"
BASE_TS = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
POLICY_CONFLICT_WAIT_S = 60.0


def stored(device_id: str, reading: Reading | dict[str, Any]) -> StoredReading:
    if isinstance(reading, dict):
        reading = Reading.model_validate(reading)
    return StoredReading(device_id, reading, datetime.now(UTC))


def stored_unchecked(device_id: str, body: dict[str, Any]) -> StoredReading:
    """A reading with an empty section, built past the wire's checks.

    The wire refuses an empty section (docs/protocol.md, "A reading"), but hubs
    before that rule stored such rows, and storage must still read them back.
    """
    sections = {
        name: SECTION_MODELS[name].model_validate(value)
        for name, value in body.items()
        if name in SECTION_MODELS
    }
    reading = Reading.model_construct(
        seq=body.get("seq"),
        ts=datetime.fromisoformat(body["ts"]).astimezone(UTC),
        extra=body.get("extra"),
        **sections,
    )
    return StoredReading(device_id, reading, datetime.now(UTC))


def simple(device_id: str, ts: datetime, seq: int | None = None, **grid: float) -> StoredReading:
    """A reading with only a grid section (``power_w`` and whatever is passed)."""
    body: dict[str, Any] = {"ts": ts.isoformat(), "grid": {"power_w": 100.0, **grid}}
    if seq is not None:
        body["seq"] = seq
    return stored(device_id, body)


def _inside(model: type[Any], name: str, fraction: float) -> float:
    """A value a given fraction of the way through a field's valid range."""
    info = model.model_fields[name]
    low, high = -1e6, 1e6
    annotated = next(arg for arg in info.annotation.__args__ if arg is not type(None))
    for meta in getattr(annotated, "__metadata__", ()):
        for item in getattr(meta, "metadata", [meta]):
            if isinstance(item, Ge):
                low = float(item.ge)  # type: ignore[arg-type]
            if isinstance(item, Le):
                high = float(item.le)  # type: ignore[arg-type]
    return low + (high - low) * fraction


def full_reading_body(ts: datetime, seq: int) -> dict[str, Any]:
    """A reading carrying every field the protocol has, with awkward but valid values."""
    body: dict[str, Any] = {"seq": seq, "ts": ts.isoformat()}
    fraction = 0.137
    for section, model in SECTION_MODELS.items():
        values: dict[str, Any] = {}
        for name in model.model_fields:
            if name == "state":
                values[name] = f"{section}-state"
            elif name.startswith("phase_"):
                values[name] = [_inside(model, "voltage_v", 0.11), 0.1, 1e-7][: 1 + seq % 3]
            else:
                values[name] = _inside(model, name, fraction)
                fraction = (fraction + 0.1234567) % 1.0
        body[section] = values
    body["extra"] = {"bms_cycle_count": 312.0, "tiny": 1e-9, "negative": -2.5}
    return body


@contextlib.asynccontextmanager
async def fresh_schema(postgres_url: str) -> AsyncIterator[str]:
    """A URL whose search_path is a new, empty schema, dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    separator = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{separator}search_path={schema}"
    finally:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


def postgres_options(backend: str, **timescale: Any) -> PostgresOptions:
    method = WriteMethod.UNNEST if backend == "postgres-unnest" else WriteMethod.COPY
    mode = TimescaleMode.REQUIRED if backend == TIMESCALE_BACKEND else TimescaleMode.AUTO
    return PostgresOptions(
        write_method=method,
        timescale=TimescaleOptions(mode=timescale.pop("mode", mode), **timescale),
        connect_timeout_s=5.0,
    )


def make_storage(backend: str, *, url: str, data_dir: Path) -> Storage:
    if backend == "sqlite":
        return SqliteStorage(data_dir / "hub.db")
    return PostgresStorage(url, postgres_options(backend))


@contextlib.asynccontextmanager
async def opened(storage: Storage) -> AsyncIterator[Storage]:
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


async def run_policy(conn: asyncpg.Connection, proc_name: str, table: str) -> None:
    """Run one TimescaleDB policy now (``CALL run_job``), as its scheduler would.

    The server's own job scheduler may be running the same policy at that moment
    (TimescaleDB refuses two refreshes of one aggregate over overlapping windows):
    then this waits for it and runs the policy again, so what was written before
    the call is covered when it returns.
    """
    job = await conn.fetchval(
        "SELECT job_id FROM timescaledb_information.jobs "
        "WHERE proc_name = $1 AND hypertable_name = $2",
        proc_name,
        table,
    )
    assert job is not None, (proc_name, table)
    deadline = time.monotonic() + POLICY_CONFLICT_WAIT_S
    while True:
        try:
            await conn.execute(f"CALL run_job({int(job)})")
        except asyncpg.LockNotAvailableError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        return


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def sqlite_schema_at(conn: sqlite3.Connection, version: int) -> None:
    """The tables of schema ``version`` in an empty SQLite file, as a hub of then left them."""
    conn.execute(
        "CREATE TABLE ems_schema_version (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    for migration in MIGRATIONS[:version]:
        assert migration.version <= version
        for sql in migration.statements(Dialect.SQLITE):
            conn.execute(sql)
        conn.execute(
            "INSERT INTO ems_schema_version VALUES (?, ?, 0)",
            (migration.version, migration.description),
        )
