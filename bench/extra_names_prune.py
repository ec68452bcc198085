"""What deleting unused lists of ``extra`` names costs SQLite's retention, on a big file.

Builds a file of ``--rows`` readings (default 3,000,000: about five weeks of one
device at 1 Hz) of the simulated site as the writer stores them (schema version 7,
hub/storage/name_lists.py), ``--flicker`` of them with a list of names of their own (a
BMS whose cell count flickers, or a hostile client), each list's ``last_ts`` its
reading's; then prints, as JSON:

- each retention batch deleting the oldest ``--prune-hours`` of readings
  (``SqliteStorage.prune``, 1,000 a batch): milliseconds, and the part spent finding
  and deleting the lists no reading uses any more (``delete_unused``, in the batches
  not full of readings: a pass's last);
- what that replaces: the list ids still used, found by one scan of the readings
  (a SQL function reading each row's id), in milliseconds;
- the upgrade from version 5: the table of lists made again, each list's ``last_ts``
  the newest reading's (one seek per device), in milliseconds.

    .venv/bin/python bench/extra_names_prune.py --rows 3000000

The rows are written with ``sqlite3`` directly, a template of an hour of readings
repeated with new times, so building the file takes a minute, not an hour.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from site_readings import readings

import hub.storage.sqlite as sqlite_module
from hub.storage.columns import EXTRA_INDEX, READING_COLUMNS, micros_from_utc
from hub.storage.name_lists import names_digest
from hub.storage.packed import read_varint
from hub.storage.retention import PRUNE_BATCH
from hub.storage.schema import EXTRA_NAMES_V7_SQLITE
from hub.storage.sqlite import SqliteOptions, SqliteStorage, Synchronous
from hub.storage.sqlite_values import PendingExtra

START = datetime(2026, 1, 1, tzinfo=UTC)
TEMPLATE_S = 3600


def _rows(
    template: list[tuple[Any, ...]], count: int, flicker_every: int
) -> Iterator[tuple[Any, ...]]:
    """``count`` rows, one a second from START, each a template row with its own ts and seq;
    every ``flicker_every``-th with a list of its own (id 2 onwards; the common list is 1)."""
    start_us = micros_from_utc(START)
    for n in range(count):
        row = list(template[n % len(template)])
        row[1] = start_us + n * 1_000_000
        row[2] = n
        row[3] = row[1]
        extra = row[EXTRA_INDEX]
        assert isinstance(extra, PendingExtra)
        own = flicker_every and n % flicker_every == 0
        row[EXTRA_INDEX] = extra.with_id(2 + n // flicker_every if own else 1)
        yield tuple(row)


def build(path: Path, count: int, flicker_every: int) -> tuple[int, float]:
    """The file; how many lists it holds, and the seconds it took."""
    began = time.perf_counter()
    template_readings = readings(TEMPLATE_S, START)
    storage = SqliteStorage(path, SqliteOptions(synchronous=Synchronous.NORMAL))
    template = [storage.prepare(r) for r in template_readings]
    names = template[0][EXTRA_INDEX]
    assert isinstance(names, PendingExtra)
    asyncio.run(_create(storage))
    marks = ", ".join("?" * len(READING_COLUMNS))
    insert = f"INSERT INTO readings ({', '.join(READING_COLUMNS)}) VALUES ({marks})"
    start_us = micros_from_utc(START)
    lists = 1
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA synchronous = NORMAL")
        text = orjson.dumps(names.names).decode()
        conn.execute(
            "INSERT INTO extra_names (id, digest, names, last_ts) VALUES (1, ?, ?, ?)",
            (names_digest(text), text, start_us + (count - 1) * 1_000_000),
        )
        chunk: list[tuple[Any, ...]] = []
        for row in _rows(template, count, flicker_every):
            chunk.append(row)
            if len(chunk) == 20_000:
                conn.executemany(insert, chunk)
                chunk = []
        conn.executemany(insert, chunk)
        if flicker_every:
            texts = (
                (n, orjson.dumps([*names.names[:-1], f"cell_{n}"]).decode())
                for n in range(0, count, flicker_every)
            )
            own = [
                (2 + n // flicker_every, names_digest(text), text, start_us + n * 1_000_000)
                for n, text in texts
            ]
            conn.executemany(
                "INSERT INTO extra_names (id, digest, names, last_ts) VALUES (?, ?, ?, ?)", own
            )
            lists += len(own)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return lists, time.perf_counter() - began


async def _create(storage: SqliteStorage) -> None:
    await storage.open()
    await storage.close()


async def prune(path: Path, hours: int) -> dict[str, Any]:
    """Retention's batches over the oldest ``hours``: ms each, and delete_unused's part."""
    spent: list[float] = []
    freed: list[int] = []
    original = sqlite_module.delete_unused

    async def timed(conn: Any, limit: int) -> list[int]:
        if limit <= 0:  # a full batch of readings: the lists wait for the pass's last
            return await original(conn, limit)
        began = time.perf_counter()
        ids = await original(conn, limit)
        spent.append((time.perf_counter() - began) * 1000)
        freed.append(len(ids))
        return ids

    sqlite_module.delete_unused = timed  # type: ignore[assignment]
    storage = SqliteStorage(path)
    await storage.open()
    batches: list[float] = []
    try:
        while True:
            began = time.perf_counter()
            deleted = await storage.prune(START + timedelta(hours=hours), None, PRUNE_BATCH)
            batches.append((time.perf_counter() - began) * 1000)
            if deleted < PRUNE_BATCH:
                break
    finally:
        await storage.close()
        sqlite_module.delete_unused = original
    return {
        "batches": len(batches),
        "batch_ms_median": round(statistics.median(batches), 2),
        "batch_ms_max": round(max(batches), 2),
        "delete_unused_calls": len(spent),
        "delete_unused_ms_median": round(statistics.median(spent), 3),
        "delete_unused_ms_max": round(max(spent), 3),
        "lists_deleted": sum(freed),
    }


def _list_id(extra: object) -> int | None:
    return read_varint(extra)[0] if isinstance(extra, bytes) else None


def scan_ms(path: Path) -> dict[str, Any]:
    """The ids the readings use, by one scan: what an exact check would cost each pass."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.create_function("list_id", 1, _list_id, deterministic=True)
        began = time.perf_counter()
        used = conn.execute("SELECT count(DISTINCT list_id(extra)) FROM readings").fetchone()[0]
        return {"ids_used": used, "scan_ms": round((time.perf_counter() - began) * 1000, 1)}


def upgrade_ms(path: Path) -> float:
    """Migration 7's statements on the lists put back in version 5's shape (rolled back)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ALTER TABLE extra_names RENAME TO bench_v7")
        conn.execute("DROP INDEX extra_names_last_ts")
        conn.execute(
            "CREATE TABLE extra_names (id INTEGER PRIMARY KEY, names TEXT NOT NULL UNIQUE)"
        )
        conn.execute("INSERT INTO extra_names SELECT id, names FROM bench_v7")
        began = time.perf_counter()
        for sql in EXTRA_NAMES_V7_SQLITE:
            conn.execute(sql)
        took = (time.perf_counter() - began) * 1000
        conn.execute("ROLLBACK")
    return round(took, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument(
        "--flicker",
        type=int,
        default=100,
        help="one reading in this many has a list of its own (0: none)",
    )
    parser.add_argument("--prune-hours", type=int, default=24)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "hub.db"
        if path.exists():
            path.unlink()
        lists, build_s = build(path, args.rows, args.flicker)
        size = path.stat().st_size
        upgrade = upgrade_ms(path)
        scan = scan_ms(path)
        pruned = asyncio.run(prune(path, args.prune_hours))
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "lists": lists,
                    "file_bytes": size,
                    "build_s": round(build_s, 1),
                    "upgrade_to_v7_ms": upgrade,
                    **scan,
                    "prune": pruned,
                    "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
