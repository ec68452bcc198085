"""Bytes per stored reading on SQLite, where they go, and the ingest rate.

Stores ``--rows`` full readings of the simulated site as the edge sends them
(bench/site_readings.py: the plant encoded into the devices' registers and decoded
with their maps, every section filled, the BMS's cells and the like in ``extra``,
and energy increments; ``--values plant``: the plant's own full-precision floats)
at 1 Hz for one device into a fresh SQLite file, through ``SqliteStorage`` in
batches of ``--batch`` readings (the writer's path), then checkpoints the WAL and
prints, as JSON: the file's size per reading, before and after ``VACUUM``, the bytes
per table and index (SQLite's ``dbstat``), the readings per second of the writes
(conversion included, as the writer does it) and the process's CPU time per
reading, and how long each batch of the retention task takes to delete them all
again (``SqliteStorage.prune``).

    .venv/bin/python bench/storage_size.py --rows 20000

``--keep PATH`` writes the file there and keeps it (for a look with ``sqlite3``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from site_readings import Values, readings

from hub.storage.base import StoredReading
from hub.storage.retention import PRUNE_BATCH
from hub.storage.sqlite import SqliteStorage


async def store(
    path: Path, rows: list[StoredReading], batch: int, page_size: int | None
) -> tuple[float, float]:
    """Readings per second of writing ``rows`` in batches (into a new file), and the
    CPU microseconds per reading of the process (all its threads: SQLite runs in
    aiosqlite's), which a machine shared with other work disturbs less."""
    if page_size is not None:
        # An empty database takes the page size before its first table.
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA page_size = {page_size}")
        conn.execute("VACUUM")
        conn.close()
    storage = SqliteStorage(path)
    await storage.open()
    try:
        began = time.perf_counter()
        cpu = time.process_time()
        for first in range(0, len(rows), batch):
            await storage.write_readings(rows[first : first + batch])
        took = time.perf_counter() - began
        cpu = time.process_time() - cpu
    finally:
        await storage.close()
    return len(rows) / took, cpu / len(rows) * 1e6


async def prune_ms(path: Path) -> list[float]:
    """Milliseconds of each retention batch deleting every reading (hub/storage/retention.py)."""
    storage = SqliteStorage(path)
    await storage.open()
    took = []
    try:
        while True:
            began = time.perf_counter()
            deleted = await storage.prune(datetime.now(UTC), None, PRUNE_BATCH)
            took.append((time.perf_counter() - began) * 1000)
            if deleted < PRUNE_BATCH:
                return took
    finally:
        await storage.close()


def sizes(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        file_bytes = path.stat().st_size
        per_table: dict[str, int] = {}
        try:
            for name, used in conn.execute(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            ):
                per_table[name] = int(used)
        except sqlite3.OperationalError:  # SQLite built without dbstat
            per_table = {}
        return {"file_bytes": file_bytes, "per_table_bytes": per_table}
    finally:
        conn.close()


def vacuum(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path.stat().st_size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument(
        "--values",
        type=Values,
        choices=list(Values),
        default=Values.REGISTERS,
        help="registers: as the edge decodes them (default); plant: the plant's own floats",
    )
    parser.add_argument(
        "--page-size", type=int, default=None, help="a new file's page size (SQLite's: 4096)"
    )
    args = parser.parse_args()
    rows = readings(args.rows, datetime(2026, 6, 21, 4, tzinfo=UTC), values=args.values)
    wire = sum(len(r.reading.model_dump_json(exclude_none=True)) for r in rows) / len(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "hub.db"
        if path.exists():
            path.unlink()
        rate, cpu_us = await store(path, rows, args.batch, args.page_size)
        before = sizes(path)
        after = vacuum(path)
        pruned = await prune_ms(path)
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "values": args.values.value,
                    "batch": args.batch,
                    "page_size": args.page_size or 4096,
                    "wire_json_bytes_per_reading": round(wire),
                    "readings_per_s": round(rate),
                    "cpu_us_per_reading": round(cpu_us, 1),
                    "bytes_per_reading": round(before["file_bytes"] / args.rows),
                    "bytes_per_reading_after_vacuum": round(after / args.rows),
                    "per_table_bytes_per_reading": {
                        name: round(used / args.rows)
                        for name, used in before["per_table_bytes"].items()
                    },
                    "prune_batch": PRUNE_BATCH,
                    "prune_ms_per_full_batch": sorted(round(ms, 1) for ms in pruned[:-1]),
                    "sqlite": sqlite3.sqlite_version,
                    "python": platform.python_version(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
