"""Each device's own values (`devices`, docs/protocol.md) stored and read back by every backend."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from hub.storage.base import Storage
from hub.storage.history import MIGRATIONS, Dialect, version_table_sql
from hub.storage.postgres import PostgresOptions, PostgresStorage
from hub.storage.schema import TimescaleMode, TimescaleOptions
from hub.storage.sqlite import SqliteStorage
from tests.hub.storage.helpers import BASE_TS, opened, simple, stored

WIDE = (BASE_TS - timedelta(days=1), BASE_TS + timedelta(days=1))
DEVICES: dict[str, Any] = {
    "inverter_east": {
        "role": "inverter",
        "total": True,
        "inverter": {"ac_power_w": 2000.0, "state": "mppt"},
        "solar": {"pv_power_w": 2100.0},
        "extra": {"pv1_voltage_v": 350.2},
    },
    "inverter_west": {"role": "inverter", "total": True, "inverter": {"ac_power_w": 1000.0}},
    "heat_pump": {
        "role": "grid",
        "total": False,
        "grid": {"power_w": 1200.0, "phase_voltage_v": [230.1]},
    },
}


def site_reading(seconds: int) -> dict[str, Any]:
    return {
        "seq": seconds,
        "ts": (BASE_TS + timedelta(seconds=seconds)).isoformat(),
        "inverter": {"ac_power_w": 3000.0, "state": "mppt"},
        "devices": DEVICES,
    }


async def test_devices_round_trip_in_history_and_latest(storage: Storage) -> None:
    with_devices = stored("site", site_reading(1))
    plain = simple("site", BASE_TS, seq=0)
    await storage.write_readings([plain, with_devices])
    rows = await storage.readings("site", *WIDE, limit=10)
    assert rows == [plain.reading.to_wire(), with_devices.reading.to_wire()]
    assert "devices" not in rows[0]  # today's readings are stored as they were
    assert rows[1]["devices"] == DEVICES
    (record,) = [d for d in await storage.devices() if d.device_id == "site"]
    assert record.last_reading is not None
    assert record.last_reading["devices"] == DEVICES


async def _write_old_sqlite(path: Path) -> None:
    """A file as a hub of schema version 2 left it, with one reading."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE ems_schema_version (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        for migration in MIGRATIONS[:2]:
            for sql in migration.statements(Dialect.SQLITE):
                conn.execute(sql)
            conn.execute(
                "INSERT INTO ems_schema_version VALUES (?, ?, 0)",
                (migration.version, migration.description),
            )
        conn.execute(
            "INSERT INTO readings (device_id, ts, seq, received_at, sections, grid_power_w) "
            "VALUES ('site', ?, 0, 0, 2, 100.0)",
            (int(BASE_TS.timestamp() * 1_000_000),),
        )


async def test_a_sqlite_file_of_version_2_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    await _write_old_sqlite(path)
    async with opened(SqliteStorage(path)) as storage:
        await storage.write_readings([stored("site", site_reading(1))])
        rows = await storage.readings("site", *WIDE, limit=10)
    assert [row.get("devices") for row in rows] == [None, DEVICES]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        versions = conn.execute("SELECT version FROM ems_schema_version ORDER BY version")
        assert versions.fetchall() == [(m.version,) for m in MIGRATIONS]


async def test_a_postgres_schema_of_version_2_gains_the_column(schema_url: str) -> None:
    conn = await asyncpg.connect(schema_url)
    try:  # as the previous hub left it
        await conn.execute(version_table_sql(Dialect.POSTGRES))
        for migration in MIGRATIONS[:2]:
            for sql in migration.statements(Dialect.POSTGRES):
                await conn.execute(sql)
            await conn.execute(
                "INSERT INTO ems_schema_version (version, description) VALUES ($1, $2)",
                migration.version,
                migration.description,
            )
        await conn.execute(
            "INSERT INTO readings (device_id, ts, seq, received_at, sections, grid_power_w) "
            "VALUES ('site', $1, 0, now(), 2, 100.0)",
            BASE_TS,
        )
    finally:
        await conn.close()
    options = PostgresOptions(timescale=TimescaleOptions(mode=TimescaleMode.OFF))
    async with opened(PostgresStorage(schema_url, options)) as storage:
        await storage.write_readings([stored("site", site_reading(1))])
        rows = await storage.readings("site", *WIDE, limit=10)
    assert [row.get("devices") for row in rows] == [None, DEVICES]
    conn = await asyncpg.connect(schema_url)
    try:
        versions = await conn.fetch("SELECT version FROM ems_schema_version ORDER BY version")
        kind = await conn.fetchval(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'readings' AND column_name = 'devices' "
            "AND table_schema = current_schema()"
        )
    finally:
        await conn.close()
    assert [v["version"] for v in versions] == [m.version for m in MIGRATIONS]
    assert kind == "jsonb"
