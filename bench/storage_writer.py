"""Rows/s through BatchWriter + PostgreSQL vs. bare asyncpg COPY into the same table.

Target (docs/benchmarks.md, "Targets"): the storage writer must reach >= 50 % of the
rows/s of a bare binary COPY. Both runs write the same readings (every device a
realistic reading: grid, battery, solar, inverter sections) into the same
``readings`` table, created by the hub's own migrations in a fresh schema that is
dropped afterwards.

* COPY baseline: ``copy_records_to_table`` in chunks of ``--batch`` rows, each
  chunk its own transaction; the records are prepared before the clock starts.
* Writer: ``BatchWriter.offer`` for every reading (the producer yields when the
  queue is full), timed from the first offer until every seq is acked, i.e.
  converted, committed with ON CONFLICT DO NOTHING, and acked; once per write
  method (unnest, copy).

    .venv/bin/python bench/storage_writer.py --rows 200000 --database postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.batch_writer import BatchWriter
from hub.server import tune_gc
from hub.storage.base import StoredReading
from hub.storage.columns import READING_COLUMNS, to_row
from hub.storage.postgres import PostgresOptions, PostgresStorage, WriteMethod
from hub.storage.schema import TimescaleMode, TimescaleOptions
from telemetry import Reading

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"


def make_rows(count: int, devices: int) -> list[StoredReading]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    received = datetime.now(UTC)
    rows = []
    for i in range(count):
        device, step = divmod(i, max(1, count // devices))
        body: dict[str, Any] = {
            "seq": step,
            "ts": start + timedelta(seconds=step),
            "inverter": {"ac_power_w": 3000.0 + i % 500, "ac_voltage_v": 231.2, "state": "mppt"},
            "grid": {
                "power_w": -850.0 + i % 97,
                "voltage_v": 230.8,
                "frequency_hz": 50.01,
                "import_energy_wh": 1523000.0 + i,
                "phase_voltage_v": [230.8, 231.1, 229.9],
            },
            "solar": {"pv_power_w": 3230.0, "pv_voltage_v": 380.2},
            "battery": {"soc_pct": 76.5, "power_w": -1200.0, "state": "charging"},
            "extra": {"bms_cycle_count": 312},
        }
        rows.append(StoredReading(f"bench-{device:04d}", Reading.model_validate(body), received))
    return rows


class CountingSink:
    def __init__(self) -> None:
        self.acked = 0
        self.done = asyncio.Event()
        self.want = 0

    def committed(self, seqs: list[int]) -> None:
        self.acked += len(seqs)
        if self.acked >= self.want:
            self.done.set()


async def bare_copy(conn: asyncpg.Connection, rows: list[StoredReading], batch: int) -> float:
    records = [to_row(r, json.dumps) for r in rows]
    columns = list(READING_COLUMNS)
    started = time.perf_counter()
    for first in range(0, len(records), batch):
        async with conn.transaction():
            await conn.copy_records_to_table(
                "readings", records=records[first : first + batch], columns=columns
            )
    return time.perf_counter() - started


async def through_writer(
    url: str, rows: list[StoredReading], batch: int, method: WriteMethod
) -> tuple[float, float]:
    options = PostgresOptions(
        write_method=method, timescale=TimescaleOptions(mode=TimescaleMode.AUTO)
    )
    storage = PostgresStorage(url, options)
    await storage.open()
    tune_gc()  # as `ems hub serve` runs the writer (hub/server.py)
    sink = CountingSink()
    sink.want = len(rows)
    try:
        async with BatchWriter(storage, max_batch=batch, max_queue=4 * batch) as writer:
            started = time.perf_counter()
            for row in rows:
                while not writer.offer(row, sink):  # noqa: ASYNC110 - offer() never blocks
                    await asyncio.sleep(0.001)  # queue full: let the writer catch up
            await sink.done.wait()
            elapsed = time.perf_counter() - started
            stats = writer.stats()
    finally:
        await storage.close()
    return elapsed, stats.average_batch_size


async def main(args: argparse.Namespace) -> int:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.database)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in args.database else "?"
    url = f"{args.database}{separator}search_path={schema}"
    rows = make_rows(args.rows, args.devices)
    try:
        storage = PostgresStorage(url)
        await storage.open()
        timescale = storage.timescale
        await storage.close()
        conn = await asyncpg.connect(url)
        try:
            copy_s = await bare_copy(conn, rows, args.batch)
            await conn.execute("TRUNCATE readings")
        finally:
            await conn.close()
        copy_rate = args.rows / copy_s
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, Python {sys.version.split()[0]}")
        print(f"storage: PostgreSQL, TimescaleDB: {timescale.present} {timescale.reason}")
        print(f"rows: {args.rows} from {args.devices} devices, batch {args.batch}")
        print(f"bare asyncpg COPY:        {copy_rate:>10,.0f} rows/s ({copy_s:.2f} s)")
        methods = [WriteMethod(m) for m in args.method.split(",")]
        for method in methods:
            seconds, average = await through_writer(url, rows, args.batch, method)
            rate = args.rows / seconds
            conn = await asyncpg.connect(url)
            try:
                stored = await conn.fetchval("SELECT count(*) FROM readings")
                await conn.execute("TRUNCATE readings")
            finally:
                await conn.close()
            assert stored == args.rows, f"stored {stored} of {args.rows}"
            print(
                f"BatchWriter ({method.value:>6}):     {rate:>10,.0f} rows/s ({seconds:.2f} s, "
                f"avg batch {average:.0f}) = {rate / copy_rate:.0%} of COPY"
            )
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--database", default=os.environ.get("EMS_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--method", default="unnest,copy", help="unnest, copy or both")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
