"""SQLite's lists of ``extra`` names go with the last reading that uses them
(schema version 7, hub/storage/name_lists.py), on real files.

Readings are compared as JSON text with what was written, so a value read back
under another list's names, or in another order, fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hub.storage.base import StoredReading
from hub.storage.columns import READING_COLUMNS
from hub.storage.history import MIGRATIONS
from hub.storage.retention import PRUNE_BATCH
from hub.storage.sqlite import SqliteOptions, SqliteStorage, Synchronous
from hub.storage.sqlite_values import PendingExtra
from tests.hub.storage.helpers import BASE_TS, full_reading_body, sqlite_schema_at, stored

FAST = SqliteOptions(synchronous=Synchronous.NORMAL)  # no fsync at every commit
WIDE = (BASE_TS - timedelta(days=400), BASE_TS + timedelta(days=400))


def _cells(count: int, offset: float = 0.0) -> dict[str, float]:
    """A BMS's cells, as many as it reports this time."""
    return {f"bms_cell_{i:02d}_v": 3.2 + i / 1000 + offset for i in range(count)}


def _reading(
    seconds: int, extra: dict[str, float], device: str = "dev-1", days: int = 0
) -> StoredReading:
    ts = BASE_TS + timedelta(days=days, seconds=seconds)
    body = full_reading_body(ts, seq=days * 86_400 + seconds)
    body["extra"] = extra
    return stored(device, body)


def _at(days: int) -> datetime:
    return BASE_TS + timedelta(days=days)


def _lists(path: Path) -> dict[int, tuple[list[str], int]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT id, names, last_ts FROM extra_names").fetchall()
    return {names_id: (json.loads(names), last_ts) for names_id, names, last_ts in rows}


def _names(path: Path) -> list[list[str]]:
    return sorted(names for names, _ in _lists(path).values())


async def _prune_all(storage: SqliteStorage, before: datetime, limit: int = PRUNE_BATCH) -> int:
    """What the hub's retention task does: batches until one is not full."""
    total = 0
    while True:
        deleted = await storage.prune(before, None, limit)
        total += deleted
        if deleted < limit:
            return total


async def _read_all(storage: SqliteStorage, device: str = "dev-1") -> list[dict[str, Any]]:
    return await storage.readings(device, *WIDE, limit=100_000)


def _wire(readings: list[StoredReading]) -> str:
    return json.dumps([r.reading.to_wire() for r in readings])


async def test_pruned_readings_take_their_lists_and_the_rest_read_back_exactly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hub.db"
    # A flickering BMS: 8, 16, 15 or 16 cells; a new list each time the count changes,
    # a few lists shared by old and new readings; a second device with one list.
    counts = [8, 16, 15, 16, 8, 14, 13, 12, 16]
    old = [_reading(i, _cells(n, i / 10)) for i, n in enumerate(counts)]
    new = [_reading(i, _cells(n, i / 10), days=30) for i, n in enumerate([16, 11, 16])]
    other_old = [_reading(i, {"meter_hz": 50.0 + i / 100}, "dev-2") for i in range(3)]
    other_new = [_reading(i, {"meter_hz": 49.9}, "dev-2", days=31) for i in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        storage = SqliteStorage(path)
        await storage.open()
        stack.push_async_callback(storage.close)
        for first in range(0, len(old), 4):  # batches as the writer makes them
            await storage.write_readings(old[first : first + 4])
        await storage.write_readings(other_old + new + other_new)
        # The writer's cache knows every list written.
        ids_before = _lists(path)
        assert len(ids_before) == 7 + 1  # 8, 16, 15, 14, 13, 12, 11 cells; the meter
        assert sorted(len(n) for n, _ in ids_before.values()) == sorted(
            [1, 8, 11, 12, 13, 14, 15, 16]
        )
        cut = _at(10)
        assert await _prune_all(storage, cut, limit=4) == len(old) + len(other_old) + 5
        # Left: the lists of 16 and 11 cells, and the meter's.
        assert _names(path) == sorted([list(_cells(16)), list(_cells(11)), ["meter_hz"]])
        gone = set(ids_before) - set(_lists(path))
        assert all(storage._lists.names_of(i) is None for i in gone)
        assert _wire(new) == json.dumps(await _read_all(storage))
        assert _wire(other_new) == json.dumps(await _read_all(storage, "dev-2"))
        # A deleted list comes back under a new id, never an old one.
        back = [_reading(i, _cells(8, 0.5), days=32) for i in range(2)]
        await storage.write_readings(back)
        again = {i for i, (n, _) in _lists(path).items() if n == list(_cells(8))}
        assert len(again) == 1
        assert min(again) > max(ids_before)
        assert _wire(new + back) == json.dumps(await _read_all(storage))
        # Nothing left to delete: the next pass deletes nothing and keeps every list.
        assert await _prune_all(storage, cut) == 0
        assert len(_lists(path)) == 4


async def test_no_reading_left_deletes_every_list(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with contextlib.AsyncExitStack() as stack:
        storage = SqliteStorage(path)
        await storage.open()
        stack.push_async_callback(storage.close)
        await storage.write_readings([_reading(i, _cells(4 + i)) for i in range(5)])
        assert await _prune_all(storage, _at(1)) == 5 + 5
        assert _lists(path) == {}
        assert await storage.devices() == []


async def test_a_resent_reading_adds_no_list_and_keeps_none_alive(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    first = _reading(0, _cells(4))
    async with contextlib.AsyncExitStack() as stack:
        storage = SqliteStorage(path)
        await storage.open()
        stack.push_async_callback(storage.close)
        await storage.write_readings([first])
        # A hostile client re-sending the stored reading with a new set of names each time,
        # alone and inside a batch with a new reading that brings a list of its own.
        for n in range(5, 9):
            await storage.write_readings([_reading(0, _cells(n))])
        await storage.write_readings(
            [_reading(0, {"x": 1.0}), _reading(1, {"y": 2.0}), _reading(1, {"z": 3.0})]
        )
        assert _names(path) == sorted([list(_cells(4)), ["y"]])
        assert _wire([first, _reading(1, {"y": 2.0})]) == json.dumps(await _read_all(storage))
        # Nor does it keep a list alive: the stored reading of day 20 is re-sent with the
        # 4 cells' names (a list the writer knows), and that list still goes with day 0.
        late = _reading(0, {"y": 3.0}, days=20)
        await storage.write_readings([late])
        await storage.write_readings([_reading(0, _cells(4, 0.5), days=20)])
        assert await _prune_all(storage, _at(10)) == 2 + 1
        assert _names(path) == [["y"]]
        assert _wire([late]) == json.dumps(await _read_all(storage))


async def test_a_batch_prepared_before_its_list_was_deleted_stores_it_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hub.db"
    async with contextlib.AsyncExitStack() as stack:
        storage = SqliteStorage(path)
        await storage.open()
        stack.push_async_callback(storage.close)
        other = SqliteStorage(path)  # a second hub on the file, caching the same list
        await other.open()
        stack.push_async_callback(other.close)
        await storage.write_readings([_reading(0, _cells(3))])
        await other.write_readings([_reading(1, _cells(3))])
        [(old_id, _)] = _lists(path).items()
        # The writer queued a batch with that list; retention deletes it before the commit.
        late = [_reading(0, _cells(3, 0.25), days=20), _reading(1, _cells(3, 0.5), days=20)]
        prepared = [storage.prepare(r) for r in late]
        assert await _prune_all(storage, _at(10)) == 2 + 1
        assert _lists(path) == {}
        await storage.write_prepared(prepared)
        [(new_id, (names, _))] = _lists(path).items()
        assert new_id > old_id
        assert names == list(_cells(3))
        # The other hub still knows the old id: its next batch finds it gone.
        await other.write_readings([_reading(2, _cells(3, 0.75), days=20)])
        assert list(_lists(path)) == [new_id]
        expected = [*late, _reading(2, _cells(3, 0.75), days=20)]
        assert _wire(expected) == json.dumps(await _read_all(storage))
        assert _wire(expected) == json.dumps(await _read_all(other))


async def test_the_writer_and_retention_at_once_lose_no_list(tmp_path: Path) -> None:
    """The hub's writer, its retention and API readers on one file, and a second hub
    reading: every reading still stored reads back exactly, every time."""
    path = tmp_path / "hub.db"
    rng = random.Random(7)
    written: dict[int, StoredReading] = {}  # seconds -> reading
    window = 100  # readings kept: retention follows the writer this far behind
    total = 800
    batches = 0
    pruned = 0
    reads = 0

    def _extra(i: int) -> dict[str, float]:
        # Now and then a new list (a hostile name); else a few lists that go unused for
        # longer than retention keeps, then come back (the writer knows their old ids).
        if rng.random() < 0.2:
            return {f"x{i}": float(i)}
        return _cells(rng.choice([14, 15] if i // 150 % 2 else [16, 17]), i / 1000)

    async with contextlib.AsyncExitStack() as stack:
        hub = SqliteStorage(path, FAST)
        await hub.open()
        stack.push_async_callback(hub.close)
        reader = SqliteStorage(path, FAST)
        await reader.open()
        stack.push_async_callback(reader.close)
        done = asyncio.Event()

        async def write() -> None:
            nonlocal batches
            i = 0
            while i < total:
                # Prepared when queued, committed later, as the batch writer does.
                size = rng.randint(1, 40)
                batch = [_reading(s, _extra(s)) for s in range(i, min(total, i + size))]
                prepared = [hub.prepare(r) for r in batch]
                written.update((s, r) for s, r in zip(range(i, i + size), batch, strict=False))
                await asyncio.sleep(0)
                await hub.write_prepared(prepared)
                i += size
                batches += 1
            done.set()

        async def retain() -> None:
            nonlocal pruned
            while not done.is_set():
                newest = max(written, default=0)
                cut = BASE_TS + timedelta(seconds=newest - window)
                pruned += await hub.prune(cut, None, rng.randint(5, 60))
                await asyncio.sleep(0)

        async def read(storage: SqliteStorage) -> None:
            nonlocal reads
            while not done.is_set():
                got = await _read_all(storage)
                # Whatever this snapshot held, each row is what was written at its ts.
                for row in got:
                    seconds = int((datetime.fromisoformat(row["ts"]) - BASE_TS).total_seconds())
                    assert json.dumps(row) == json.dumps(written[seconds].reading.to_wire())
                reads += 1
                await asyncio.sleep(0)

        await asyncio.gather(write(), retain(), read(hub), read(reader))
        cut = BASE_TS + timedelta(seconds=total - window)
        pruned += await _prune_all(hub, cut)
        kept = [written[s] for s in sorted(written) if s >= total - window]
        assert _wire(kept) == json.dumps(await _read_all(hub))
        assert _wire(kept) == json.dumps(await _read_all(reader))
        # Exactly the lists the kept readings use are left.
        used = sorted({tuple(r.reading.extra or {}) for r in kept})
        assert sorted(tuple(n) for n in _names(path)) == used
    assert batches > 20
    assert reads > 10
    assert pruned > total - window


def _version_5_file(path: Path, readings: list[StoredReading]) -> None:
    """A file as a hub of schema version 5 left it: lists without last_ts, ids reusable."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        sqlite_schema_at(conn, 5)
        ids: dict[tuple[str, ...], int] = {}
        rows = []
        for reading in readings:
            row = list(SqliteStorage(path).prepare(reading))
            extra = row[READING_COLUMNS.index("extra")]
            assert isinstance(extra, PendingExtra)
            if extra.names not in ids:
                cursor = conn.execute(
                    "INSERT INTO extra_names (names) VALUES (?)", (json.dumps(extra.names),)
                )
                assert cursor.lastrowid is not None
                ids[extra.names] = cursor.lastrowid
            row[READING_COLUMNS.index("extra")] = extra.with_id(ids[extra.names])
            rows.append(row)
        marks = ", ".join("?" * len(READING_COLUMNS))
        conn.executemany(
            f"INSERT INTO readings ({', '.join(READING_COLUMNS)}) VALUES ({marks})", rows
        )


async def test_a_version_5_file_upgrades_and_its_lists_go_after_its_readings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hub.db"
    old = [_reading(i, _cells(4 if i % 2 else 5)) for i in range(4)]
    old_other = [_reading(i, {"meter_hz": 50.0}, "dev-2", days=2) for i in range(2)]
    _version_5_file(path, old + old_other)
    newest_old = max(r.reading.ts for r in old + old_other)
    async with contextlib.AsyncExitStack() as stack:
        storage = SqliteStorage(path)
        await storage.open()
        stack.push_async_callback(storage.close)
        assert _wire(old) == json.dumps(await _read_all(storage))
        # Each list kept from version 5 holds until the newest reading of the file then.
        lists = _lists(path)
        newest_us = int(newest_old.timestamp() * 1_000_000)
        assert sorted(lists) == [1, 2, 3]
        assert {t for _, t in lists.values()} == {newest_us}
        new = [_reading(i, _cells(4, 0.5), days=20) for i in range(2)]
        await storage.write_readings([*new, _reading(0, {"z": 1.0}, "dev-3", days=20)])
        # The hub read the 4 cells' list (version 5's, without a digest) and uses its id.
        lists_now = _names(path)
        assert lists_now == sorted([list(_cells(4)), list(_cells(5)), ["meter_hz"], ["z"]])
        # Day 0's readings go; every list from version 5 is kept until the newest
        # reading of the file then (day 2), the 4 cells' until day 20.
        assert await _prune_all(storage, _at(1)) == 4
        assert _names(path) == lists_now
        assert await _prune_all(storage, _at(10)) == 2 + 2
        assert _names(path) == sorted([list(_cells(4)), ["z"]])
        assert _wire(new) == json.dumps(await _read_all(storage))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        versions = conn.execute("SELECT version FROM ems_schema_version ORDER BY version")
        assert versions.fetchall() == [(m.version,) for m in MIGRATIONS]
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'extra_names'").fetchone()
        assert "AUTOINCREMENT" in sql
        digests = conn.execute("SELECT id, length(digest) FROM extra_names ORDER BY id")
        assert [n for _, n in digests.fetchall()] == [None, 16]
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM extra_names WHERE last_ts < 5 ORDER BY last_ts"
        ).fetchall()
        assert "INDEX extra_names_last_ts (last_ts<?)" in str(plan)
