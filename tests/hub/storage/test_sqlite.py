"""SQLite specifics: WAL on disk, locks mapped to StorageUnavailable, two hubs on one file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from hub.storage.base import StorageConfigError, StorageError, StorageUnavailable, TokenRecord
from hub.storage.history import LATEST_VERSION, MIGRATIONS, Dialect
from hub.storage.sqlite import SqliteOptions, SqliteStorage, Synchronous
from tests.hub.storage.helpers import BASE_TS, opened, simple

WIDE = (BASE_TS - timedelta(days=1), BASE_TS + timedelta(days=1))


async def test_the_file_is_in_wal_mode_and_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "hub.db"
    async with opened(SqliteStorage(path)):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"readings", "device_tokens", "ems_schema_version"} <= tables


async def test_a_locked_file_is_unavailable_until_released(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    storage = SqliteStorage(path, SqliteOptions(busy_timeout_s=0.2, synchronous=Synchronous.NORMAL))
    async with opened(storage):
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
            with pytest.raises(StorageUnavailable, match="locked"):
                await storage.write_readings([simple("dev-1", BASE_TS, seq=1)])
            other.execute("ROLLBACK")
        finally:
            other.close()
        await storage.write_readings([simple("dev-1", BASE_TS, seq=1)])
        assert len(await storage.readings("dev-1", *WIDE, limit=10)) == 1


async def test_a_broken_schema_is_a_storage_error_not_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with opened(SqliteStorage(path)) as storage:
        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE readings RENAME TO readings_gone")
        with pytest.raises(StorageError) as caught:
            await storage.write_readings([simple("dev-1", BASE_TS)])
        assert not isinstance(caught.value, StorageUnavailable)


async def test_two_hubs_opening_one_file_together(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    storages = [SqliteStorage(path) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in storages))
        await storages[0].write_readings([simple("dev-1", BASE_TS, seq=1)])
        assert len(await storages[2].readings("dev-1", *WIDE, limit=10)) == 1
        with sqlite3.connect(path) as conn:
            versions = conn.execute("SELECT version FROM ems_schema_version").fetchall()
        assert versions == [(version,) for version in range(1, LATEST_VERSION + 1)]
    finally:
        await asyncio.gather(*(s.close() for s in storages))


async def test_a_schema_newer_than_the_hub_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with opened(SqliteStorage(path)):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO ems_schema_version VALUES (999, 'future', 0)")
    with pytest.raises(StorageConfigError, match="version 999"):
        await SqliteStorage(path).open()


async def test_a_file_of_schema_version_1_upgrades_and_keeps_its_tokens(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    first = MIGRATIONS[0]
    assert first.version == 1
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:  # as the previous hub left it
        conn.execute(
            "CREATE TABLE ems_schema_version (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        for sql in first.statements(Dialect.SQLITE):
            conn.execute(sql)
        conn.execute("INSERT INTO ems_schema_version VALUES (1, ?, 0)", (first.description,))
        conn.execute("INSERT INTO device_tokens VALUES ('h1', 'dev-1', 1793520000000000)")
    async with opened(SqliteStorage(path)) as storage:
        assert [t.token_hash for t in await storage.tokens()] == ["h1"]
        before = await storage.token_generation()
        assert await storage.revoke_tokens("dev-1") == 1
        assert await storage.token_generation() != before
    with contextlib.closing(sqlite3.connect(path)) as conn:
        versions = conn.execute("SELECT version FROM ems_schema_version ORDER BY version")
        assert versions.fetchall() == [(v,) for v in range(1, LATEST_VERSION + 1)]


async def test_token_changes_by_hand_move_the_generation(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with opened(SqliteStorage(path)) as storage:
        await storage.add_token(TokenRecord("dev-1", "h1", BASE_TS))
        last = await storage.token_generation()
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            for sql, changes in (
                # A statement's own conflict policy overrides a trigger's: the bump has none.
                ("INSERT OR IGNORE INTO device_tokens VALUES ('h2', 'dev-1', 0)", True),
                ("INSERT OR IGNORE INTO device_tokens VALUES ('h2', 'dev-1', 0)", False),
                ("INSERT OR REPLACE INTO device_tokens VALUES ('h2', 'dev-2', 0)", True),
                ("UPDATE device_tokens SET device_id = 'dev-3' WHERE token_hash = 'h2'", True),
                ("DELETE FROM token_generation", True),  # a lost counter row comes back...
                ("DELETE FROM device_tokens", True),  # ... at the next change
            ):
                conn.execute(sql)
                now = await storage.token_generation()
                assert (now != last) == changes, sql
                last = now
        assert await storage.tokens() == []


async def test_a_column_missing_for_a_newer_field_is_added(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with opened(SqliteStorage(path)):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE readings DROP COLUMN grid_phase_power_w")
    async with opened(SqliteStorage(path)) as storage:
        reading = simple("dev-1", BASE_TS)
        body = reading.reading.to_wire()
        body["grid"]["phase_power_w"] = [1.5, -2.5]
        from tests.hub.storage.helpers import stored

        await storage.write_readings([stored("dev-1", body)])
        rows = await storage.readings("dev-1", *WIDE, limit=1)
        assert rows[0]["grid"]["phase_power_w"] == [1.5, -2.5]
