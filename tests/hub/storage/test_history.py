"""One schema history for both storages (hub/storage/history.py): list, runner, result."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from hub.storage.base import StorageConfigError
from hub.storage.columns import READING_COLUMNS
from hub.storage.float32_codec import MASK_COLUMN
from hub.storage.history import (
    LATEST_VERSION,
    MIGRATIONS,
    Dialect,
    missing_column_statements,
    pending,
)
from hub.storage.postgres import PostgresStorage
from hub.storage.schema import TimescaleMode
from hub.storage.sqlite import SqliteStorage
from tests.hub.storage.helpers import opened, postgres_options

TABLES = ("readings", "device_tokens", "token_generation", "ems_schema_version")


def test_the_versions_count_up_from_one_and_each_changes_a_dialect() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert len(MIGRATIONS) == LATEST_VERSION
    assert len({m.description for m in MIGRATIONS}) == len(MIGRATIONS)
    for migration in MIGRATIONS:
        # A dialect may have nothing to change (version 5: PostgreSQL); never both.
        assert any(migration.statements(d) for d in Dialect), migration.version
        assert migration.statements(Dialect.POSTGRES) != migration.statements(Dialect.SQLITE)


def test_pending_lists_what_a_database_lacks_and_refuses_a_newer_one() -> None:
    assert pending(set(), "x") == list(MIGRATIONS)
    assert pending({m.version for m in MIGRATIONS}, "x") == []
    assert pending({1, 3}, "x") == [m for m in MIGRATIONS if m.version not in {1, 3}]
    with pytest.raises(
        StorageConfigError,
        match=rf"^hub\.db's schema is version {LATEST_VERSION + 1}, newer than this hub's",
    ):
        pending({1, LATEST_VERSION + 1}, "hub.db")


def test_a_column_for_a_newer_field_is_added_in_each_dialect() -> None:
    for dialect in Dialect:
        assert missing_column_statements(dialect, READING_COLUMNS) == []
    lacking = set(READING_COLUMNS) - {"grid_power_w", "battery_state"}
    assert missing_column_statements(Dialect.SQLITE, lacking) == [
        "ALTER TABLE readings ADD COLUMN grid_power_w REAL",
        "ALTER TABLE readings ADD COLUMN battery_state TEXT",
    ]
    assert missing_column_statements(Dialect.POSTGRES, lacking) == [
        "ALTER TABLE readings ADD COLUMN IF NOT EXISTS grid_power_w double precision",
        "ALTER TABLE readings ADD COLUMN IF NOT EXISTS battery_state text",
    ]


def _sqlite_schema(path: Path) -> tuple[list[tuple[int, str]], dict[str, set[str]]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        versions = conn.execute(
            "SELECT version, description FROM ems_schema_version ORDER BY version"
        ).fetchall()
        columns = {
            table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for table in TABLES
        }
    return [tuple(v) for v in versions], columns


async def _postgres_schema(url: str) -> tuple[list[tuple[int, str]], dict[str, set[str]]]:
    conn = await asyncpg.connect(url)
    try:
        versions = await conn.fetch(
            "SELECT version, description FROM ems_schema_version ORDER BY version"
        )
        columns: dict[str, set[str]] = {}
        for table in TABLES:
            rows = await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = $1",
                table,
            )
            columns[table] = {row["column_name"] for row in rows}
    finally:
        await conn.close()
    return [(v["version"], v["description"]) for v in versions], columns


@pytest.mark.timescaledb
async def test_every_storage_reaches_the_same_version_with_the_same_tables(
    tmp_path: Path, schema_url: str, timescaledb_url: str
) -> None:
    path = tmp_path / "hub.db"
    async with opened(SqliteStorage(path)):
        pass
    plain = PostgresStorage(schema_url, postgres_options("postgres-copy", mode=TimescaleMode.OFF))
    async with opened(plain):
        pass
    timescale = PostgresStorage(timescaledb_url, postgres_options("timescaledb"))
    async with opened(timescale):
        assert timescale.timescale.present

    expected = [(m.version, m.description) for m in MIGRATIONS]
    sqlite_versions, sqlite_columns = _sqlite_schema(path)
    assert sqlite_versions == expected
    # PostgreSQL's one column of its own: which fields are float32 stand-ins
    # (hub/storage/float32_codec.py); SQLite packs decimals instead.
    postgres_columns = {**sqlite_columns, "readings": sqlite_columns["readings"] | {MASK_COLUMN}}
    for url in (schema_url, timescaledb_url):
        versions, columns = await _postgres_schema(url)
        assert versions == expected
        assert columns == postgres_columns
    assert sqlite_columns["readings"] >= {"device_id", "ts", "devices", "extra"}
