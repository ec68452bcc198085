"""Energy queries over a synthetic 1 Hz history, and the writer's cost of the rollup.

    .venv/bin/python bench/energy_queries.py --backend timescaledb --url URL --days 365
    .venv/bin/python bench/energy_queries.py --backend postgres --url URL --days 30
    .venv/bin/python bench/energy_queries.py --backend sqlite --days 30
    .venv/bin/python bench/energy_queries.py --backend sqlite --ingest

Loads ``--days`` of one device's readings at 1 Hz, each with its energy
increments (docs/protocol.md, "Energy"): binary COPY on PostgreSQL, executemany
on SQLite, straight into ``readings``; then fills the rollup as its keeper
would (TimescaleDB: a refresh of ``energy_15m`` over everything; otherwise one
``INSERT ... SELECT`` of the same sums the writer adds). Then times, through
the storage's own ``energy()`` (what the API calls), energy per local day over
the whole span and per local hour over the last 30 days, in Europe/Berlin, and the
device's all-time sums: ``energy_total()`` (what the hub's MQTT bridge reads per
connected site, hub/mqtt_bridge.py) and ``energy()`` over one interval holding
every bucket.

``--ingest``: writes ``--batches`` batches of 1000 readings through
``write_readings`` (the hub's writer path), once without energy (the writer as
it was) and once with (the rollup kept in the insert's transaction), and
prints readings per second of each. docs/benchmarks.md, "Energy" has figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from hub.energy_query import parse_energy_query
from hub.storage.base import Storage, StoredReading
from hub.storage.columns import ENERGY_COMPLETE_INDEX, READING_COLUMNS, micros_from_utc
from hub.storage.energy import ALL_TIME, ENERGY_CAGG, ENERGY_ROLLUP
from hub.storage.postgres import PostgresOptions, PostgresStorage
from hub.storage.schema import TimescaleMode, TimescaleOptions
from hub.storage.sqlite import SqliteStorage
from telemetry import Reading

DEVICE = "bench-site"
ZONE = "Europe/Berlin"
LOAD_COLUMNS = (
    "device_id",
    "ts",
    "seq",
    "received_at",
    "sections",
    "grid_power_w",
    "energy_span_s",
    "energy_complete",
    "energy_pv_wh",
    "energy_import_wh",
    "energy_export_wh",
    "energy_house_wh",
)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def rows(start: datetime, seconds: int) -> Iterator[tuple[Any, ...]]:
    """One reading a second: a PV bell in the day, a constant house load."""
    for i in range(seconds):
        ts = start + timedelta(seconds=i)
        hour = (i % 86_400) / 3600
        pv = max(0.0, 4000.0 * (1 - ((hour - 13) / 6) ** 2))
        house = 600.0
        export = max(0.0, pv - house)
        grid_in = max(0.0, house - pv)
        yield (
            DEVICE, ts, i, ts, 2, grid_in - export, 1.0, True,
            pv / 3600, grid_in / 3600, export / 3600, house / 3600,
        )  # fmt: skip


def storage_for(args: argparse.Namespace, data_dir: Path) -> Storage:
    if args.backend == "sqlite":
        return SqliteStorage(data_dir / "hub.db")
    mode = TimescaleMode.REQUIRED if args.backend == "timescaledb" else TimescaleMode.OFF
    return PostgresStorage(args.url, PostgresOptions(timescale=TimescaleOptions(mode=mode)))


async def load_postgres(args: argparse.Namespace, start: datetime, seconds: int) -> None:
    conn = await asyncpg.connect(args.url, command_timeout=7200)
    try:
        chunk: list[tuple[Any, ...]] = []
        for row in rows(start, seconds):
            chunk.append(row)
            if len(chunk) == 100_000:
                await conn.copy_records_to_table("readings", records=chunk, columns=LOAD_COLUMNS)
                chunk = []
        if chunk:
            await conn.copy_records_to_table("readings", records=chunk, columns=LOAD_COLUMNS)
        if args.backend == "timescaledb":
            for _ in range(120):
                try:
                    await conn.execute(
                        f"CALL refresh_continuous_aggregate('{ENERGY_CAGG}', NULL, NULL)"
                    )
                    break
                except asyncpg.LockNotAvailableError:
                    # The aggregate's own policy is refreshing it (a server whose
                    # background jobs run): ours goes once that one is done.
                    await asyncio.sleep(1.0)
            else:
                raise SystemExit("energy_15m: the policy's refresh held it for 2 minutes")
        else:
            await conn.execute(_rollup_fill("date_bin('15 minutes', ts, TIMESTAMPTZ 'epoch')"))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _rollup_fill(bucket: str) -> str:
    return (
        f"INSERT INTO {ENERGY_ROLLUP} (device_id, bucket, readings, incomplete, span_s, "
        "max_span_s, pv_wh, import_wh, export_wh, house_wh) "
        f"SELECT device_id, {bucket}, count(*), 0, sum(energy_span_s), max(energy_span_s), "
        "sum(energy_pv_wh), sum(energy_import_wh), sum(energy_export_wh), sum(energy_house_wh) "
        "FROM readings GROUP BY 1, 2"
    )


async def load_sqlite(path: Path, start: datetime, seconds: int) -> None:
    import sqlite3

    placeholders = ", ".join("?" * len(LOAD_COLUMNS))
    with sqlite3.connect(path) as conn:
        batch: list[tuple[Any, ...]] = []
        sql = f"INSERT INTO readings ({', '.join(LOAD_COLUMNS)}) VALUES ({placeholders})"
        for row in rows(start, seconds):
            values = list(row)
            values[1] = values[3] = micros_from_utc(row[1])
            batch.append(tuple(values))
            if len(batch) == 100_000:
                conn.executemany(sql, batch)
                batch = []
        conn.executemany(sql, batch)
        conn.execute(_rollup_fill("ts - ts % 900000000"))
        conn.execute("ANALYZE")


async def timed(storage: Storage, edges: tuple[datetime, ...], runs: int = 7) -> float:
    await storage.energy(DEVICE, edges)  # warm
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await storage.energy(DEVICE, edges)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def timed_total(storage: Storage, runs: int = 7) -> float:
    await storage.energy_total(DEVICE)  # warm
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await storage.energy_total(DEVICE)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def edges_of(start: str, end: str, period: str) -> tuple[datetime, ...]:
    return parse_energy_query(
        start=start, end=end, period=period, tz=ZONE, stored_zone=None, now=FAR_FUTURE
    ).edges


async def queries(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        storage = storage_for(args, Path(scratch))
        await storage.open()
        try:
            start = datetime(2025, 1, 1, tzinfo=UTC) - timedelta(hours=1)  # Berlin's midnight
            seconds = args.days * 86_400
            began = time.perf_counter()
            if args.no_load:
                if args.backend == "sqlite":
                    raise SystemExit("--no-load: PostgreSQL only (the SQLite file is temporary)")
            elif args.backend == "sqlite":
                await storage.close()
                await load_sqlite(Path(scratch) / "hub.db", start, seconds)
                await storage.open()
            else:
                await load_postgres(args, start, seconds)
            load_s = time.perf_counter() - began
            if not args.no_load:
                print(f"loaded {seconds:,} readings and their rollup in {load_s:.0f} s")
            last = (start + timedelta(seconds=seconds - 1)).date()
            days = edges_of("2025-01-01", last.isoformat(), "day")
            month_start = (last - timedelta(days=29)).isoformat()
            hours = edges_of(month_start, last.isoformat(), "hour")
            day_ms = await timed(storage, days)
            hour_ms = await timed(storage, hours)
            print(f"{args.backend}: energy per day over {len(days) - 1} days: {day_ms:.1f} ms")
            count = len(hours) - 1
            print(f"{args.backend}: energy per hour over 30 days ({count}): {hour_ms:.1f} ms")
            all_time_ms = await timed(storage, ALL_TIME)
            total_ms = await timed_total(storage)
            print(
                f"{args.backend}: all-time totals ({args.days} days stored): "
                f"energy_total {total_ms:.1f} ms, energy over ALL_TIME {all_time_ms:.1f} ms"
            )
        finally:
            await storage.close()


def reading(ts: datetime, seq: int, energy: bool) -> StoredReading:
    body: dict[str, Any] = {
        "seq": seq,
        "ts": ts.isoformat(),
        "grid": {"power_w": -850.0, "voltage_v": 230.1},
        "solar": {"pv_power_w": 3230.0},
        "battery": {"soc_pct": 76.5, "power_w": -1200.0},
    }
    if energy:
        body["energy"] = {"span_s": 1.0, "complete": True, "pv_wh": 0.897, "import_wh": 0.0,
                          "export_wh": 0.236, "charge_wh": 0.333, "house_wh": 0.328}  # fmt: skip
    return StoredReading(DEVICE, Reading.model_validate(body, context={"now": FAR_FUTURE}), ts)


# What a batch carries: readings as before, readings with energy whose rollup is
# skipped (their rows' `energy_complete` cleared: the cost of the columns alone),
# readings with energy and their rollup (the writer as it is).
KINDS = ("no energy", "energy columns only", "energy and rollup")


def _batches(storage: Storage, kind: str, count: int) -> list[list[Any]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    energy = kind != KINDS[0]
    batches = []
    for b in range(count):
        rows = [
            storage.prepare(reading(start + timedelta(seconds=b * 1000 + i), b * 1000 + i, energy))
            for i in range(1000)
        ]
        if kind == KINDS[1]:
            cut = ENERGY_COMPLETE_INDEX
            rows = [(*row[:cut], None, *row[cut + 1 :]) for row in rows]
        batches.append(rows)
    return batches


async def _drop(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            f"DROP TABLE IF EXISTS readings, {ENERGY_ROLLUP}, device_timezones, "
            "device_tokens, token_generation, ems_schema_version CASCADE"
        )
    finally:
        await conn.close()


async def ingest(args: argparse.Namespace) -> None:
    """Readings per second of wall time, and of this process's CPU time (the writer's
    own work, less disturbed by other load; the database server's is not in it)."""
    wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for kind in KINDS * args.rounds:
        with tempfile.TemporaryDirectory() as scratch:
            storage = storage_for(args, Path(scratch))
            await storage.open()
            try:
                batches = _batches(storage, kind, args.batches)
                began, began_cpu = time.perf_counter(), time.process_time()
                for batch in batches:
                    await storage.write_prepared(batch)
                count = args.batches * 1000
                wall[kind].append(count / (time.perf_counter() - began))
                cpu[kind].append(count / (time.process_time() - began_cpu))
            finally:
                await storage.close()
            if args.backend != "sqlite":
                await _drop(args.url)
    base_wall, base_cpu = statistics.median(wall[KINDS[0]]), statistics.median(cpu[KINDS[0]])
    for kind in KINDS:
        w, c = statistics.median(wall[kind]), statistics.median(cpu[kind])
        print(
            f"{args.backend}: {kind}: {w:,.0f} readings/s ({w / base_wall - 1:+.1%}), "
            f"per CPU second of the hub process {c:,.0f} ({c / base_cpu - 1:+.1%}); "
            f"median of {args.rounds}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "timescaledb"), required=True)
    parser.add_argument("--url", help="PostgreSQL URL of an empty database")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--ingest", action="store_true")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5, help="--ingest: runs of each kind")
    parser.add_argument(
        "--no-load", action="store_true", help="time the queries on the database as loaded"
    )
    args = parser.parse_args()
    assert len(READING_COLUMNS) > len(LOAD_COLUMNS)
    asyncio.run(ingest(args) if args.ingest else queries(args))


if __name__ == "__main__":
    main()
