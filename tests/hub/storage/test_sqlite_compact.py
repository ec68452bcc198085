"""SQLite's compact rows (schema version 5): extra's names once, values and phase lists packed.

Rows a hub of version 4 wrote (JSON text) read exactly as before after the
upgrade, beside the new rows; the results are compared as JSON text, so a
``5000.0`` read back as ``5000`` or a ``-0.0`` as ``0.0`` would fail.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.storage.base import StorageError, StorageUnavailable, StoredReading
from hub.storage.columns import (
    FIELD_COLUMNS,
    FIELDS_OFFSET,
    JSON_INDEXES,
    READING_COLUMNS,
    ColumnKind,
    json_text,
    micros_from_utc,
    to_row,
)
from hub.storage.history import MIGRATIONS
from hub.storage.name_lists import NameLists
from hub.storage.packed import pack_numbers, varint
from hub.storage.sqlite import SqliteOptions, SqliteStorage, Synchronous
from hub.storage.sqlite_values import (
    PendingExtra,
    extra_from_sqlite,
    extra_to_sqlite,
    list_from_sqlite,
    list_to_sqlite,
)
from tests.hub.storage.helpers import BASE_TS, full_reading_body, opened, sqlite_schema_at, stored

WIDE = (BASE_TS - timedelta(days=1), BASE_TS + timedelta(days=1))
EXTRA = {"bms_cell_voltage_01_v": 3.316, "bms_cycle_count": 312.0, "zero": -0.0, "big": 1e15}
_LISTS = [
    index
    for index, column in enumerate(FIELD_COLUMNS, start=FIELDS_OFFSET)
    if column.kind is ColumnKind.NUMBER_LIST
]


def _reading(seconds: int, extra: dict[str, float] | None = None) -> StoredReading:
    body = full_reading_body(BASE_TS + timedelta(seconds=seconds), seq=seconds)
    body["extra"] = dict(EXTRA if extra is None else extra)
    return stored("dev-1", body)


def _text(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows)


def _version_4_row(reading: StoredReading) -> tuple[Any, ...]:
    """A row as a hub of schema version 4 wrote it: times in microseconds, JSON text."""
    values = list(to_row(reading))
    values[1] = micros_from_utc(values[1])
    values[3] = micros_from_utc(values[3])
    for index in (*_LISTS, *JSON_INDEXES):
        if values[index] is not None:
            values[index] = json_text(values[index])
    return tuple(values)


def _write_version_4(path: Path, readings: list[StoredReading]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        sqlite_schema_at(conn, 4)
        marks = ", ".join("?" * len(READING_COLUMNS))
        conn.executemany(
            f"INSERT INTO readings ({', '.join(READING_COLUMNS)}) VALUES ({marks})",
            [_version_4_row(r) for r in readings],
        )


def _column_types(path: Path) -> list[tuple[str, str, str]]:
    """(ts, typeof(extra), typeof(grid_phase_voltage_v)) of every stored row."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT ts, typeof(extra), typeof(grid_phase_voltage_v) FROM readings ORDER BY ts"
        ).fetchall()


async def test_a_version_4_file_with_readings_reads_them_as_before_beside_new_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hub.db"
    old = [_reading(i) for i in range(3)]
    _write_version_4(path, old)
    new = [_reading(i) for i in range(3, 6)]
    async with opened(SqliteStorage(path)) as storage:
        before = await storage.readings("dev-1", *WIDE, limit=10)
        await storage.write_readings(new)
        after = await storage.readings("dev-1", *WIDE, limit=10)
        newest = await storage.readings("dev-1", *WIDE, limit=1, newest_first=True)
        devices = await storage.devices()
    expected = [r.reading.to_wire() for r in old + new]
    assert _text(before) == _text(expected[:3])
    assert _text(after) == _text(expected)
    assert _text(newest) == _text(expected[-1:])
    assert [d.last_reading for d in devices] == [expected[-1]]
    # The old rows kept their JSON text (nothing was rewritten); the new ones are packed.
    types = [(extra, phases) for _, extra, phases in _column_types(path)]
    assert types == [("text", "text")] * 3 + [("blob", "blob")] * 3
    with contextlib.closing(sqlite3.connect(path)) as conn:
        versions = conn.execute("SELECT version FROM ems_schema_version ORDER BY version")
        assert versions.fetchall() == [(m.version,) for m in MIGRATIONS]


async def test_each_list_of_names_is_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    other = {"a": 1.0, "b": 2.5}
    batches = [
        [_reading(i) for i in range(0, 4)],
        [_reading(i, other) for i in range(4, 6)] + [_reading(6)],
        [_reading(i, dict(reversed(list(EXTRA.items())))) for i in range(7, 9)],
    ]
    async with opened(SqliteStorage(path)) as storage:
        for batch in batches:
            await storage.write_readings(batch)
        rows = await storage.readings("dev-1", *WIDE, limit=20)
    assert _text(rows) == _text([r.reading.to_wire() for b in batches for r in b])
    # The reversed map is another list: its names' order is kept on the way back.
    assert list(rows[-1]["extra"]) == list(reversed(list(EXTRA)))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        lists = conn.execute("SELECT id, names FROM extra_names ORDER BY id").fetchall()
    assert [json.loads(names) for _, names in lists] == [
        list(EXTRA),
        list(other),
        list(reversed(list(EXTRA))),
    ]


async def test_a_reader_learns_the_lists_another_hub_wrote(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with opened(SqliteStorage(path)) as writer, opened(SqliteStorage(path)) as reader:
        await writer.write_readings([_reading(0)])
        await reader.write_readings([_reading(1, {"x": 1.0})])
        await writer.write_readings([_reading(2, {"x": 2.0}), _reading(3)])
        seen_by_reader = await reader.readings("dev-1", *WIDE, limit=10)
        seen_by_writer = await writer.readings("dev-1", *WIDE, limit=10)
    assert _text(seen_by_reader) == _text(seen_by_writer)
    assert [row["extra"] for row in seen_by_reader] == [EXTRA, {"x": 1.0}, {"x": 2.0}, EXTRA]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM extra_names").fetchone() == (2,)


async def test_a_failed_write_leaves_no_list_id_behind(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    options = SqliteOptions(busy_timeout_s=0.2, synchronous=Synchronous.NORMAL)
    async with opened(SqliteStorage(path, options)) as storage:
        first = [_reading(0, {"lost": 1.0})]
        rows = [storage.prepare(r) for r in first]
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute(  # another hub writes a list first: it takes id 1
                "INSERT INTO extra_names (names, last_ts) VALUES ('[\"theirs\"]', 0)"
            )
            conn.commit()
            conn.isolation_level = None
            conn.execute("BEGIN IMMEDIATE")
            with pytest.raises(StorageUnavailable, match="locked"):
                await storage.write_prepared(rows)
            conn.execute("ROLLBACK")
        await storage.write_prepared(rows)  # the batch writer's retry, the same rows
        await storage.write_readings([_reading(1, {"lost": 2.0})])
        back = await storage.readings("dev-1", *WIDE, limit=10)
    assert [row["extra"] for row in back] == [{"lost": 1.0}, {"lost": 2.0}]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT id, names FROM extra_names ORDER BY id").fetchall() == [
            (1, '["theirs"]'),
            (2, '["lost"]'),
        ]


async def test_a_row_whose_list_is_gone_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with opened(SqliteStorage(path)) as storage:
        await storage.write_readings([_reading(0)])
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM extra_names")
    async with opened(SqliteStorage(path)) as storage:
        with pytest.raises(StorageError, match="extra names list 1 is not in extra_names"):
            await storage.readings("dev-1", *WIDE, limit=10)


def test_extra_waits_for_its_lists_id_then_is_packed_with_it() -> None:
    waiting = extra_to_sqlite(EXTRA, NameLists())
    assert isinstance(waiting, PendingExtra)
    assert waiting.names == tuple(EXTRA)
    packed = waiting.with_id(7)
    assert packed == varint(7) + pack_numbers(list(EXTRA.values()))
    back = extra_from_sqlite(packed, {7: waiting.names})
    assert json.dumps(back) == json.dumps(EXTRA)  # order, -0.0 and 312.0 kept
    assert extra_from_sqlite(json.dumps(EXTRA), {}) == EXTRA  # a version 4 row


def test_a_packed_extra_that_does_not_fit_its_list_is_refused() -> None:
    lists = {1: ("a", "b")}
    with pytest.raises(ValueError, match="has 2 names, not 1"):
        extra_from_sqlite(varint(1) + pack_numbers([1.0]), lists)
    with pytest.raises(ValueError, match="list 2 is not in extra_names"):
        extra_from_sqlite(varint(2) + pack_numbers([1.0]), lists)


def test_the_cache_of_lists_starts_again_past_its_limit() -> None:
    lists = NameLists(limit=2)
    lists.learn(1, ("a",))
    lists.learn(2, ("b",))
    assert len(lists) == 2
    lists.learn(2, ("b",))  # known already: the cache stays as it is
    assert len(lists) == 2
    lists.learn(3, ("c",))
    assert len(lists) == 1
    assert lists.id_of(("a",)) is None
    assert lists.names_of(1) is None
    assert lists.id_of(("c",)) == 3
    assert lists.names_of(3) == ("c",)
    lists.learn(4, ("c",))  # stored again under a new id (the old one deleted)
    assert (lists.id_of(("c",)), lists.names_of(3), lists.names_of(4)) == (4, None, ("c",))
    lists.forget([4, 9])
    assert (len(lists), lists.id_of(("c",)), lists.names_of(4)) == (0, None, None)


def test_phase_lists_read_in_either_form() -> None:
    values = [231.51395, 0.1, -0.0]
    assert json.dumps(list_from_sqlite(list_to_sqlite(values))) == json.dumps(values)
    assert list_from_sqlite("[231.51395,0.1,-0.0]") == values
