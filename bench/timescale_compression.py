"""TimescaleDB's compression ratio on simulated 1 Hz readings of one device.

Writes ``--days`` days of full readings of the simulated site as the edge sends them
(bench/site_readings.py, with energy; ``--values plant``: the plant's own
full-precision floats), one reading per second, old enough for the compression
policy (they end ``compress_after`` plus a day before now), through
``PostgresStorage`` on TimescaleDB into a database created for the run
(bench/scratch_database.py), then runs the compression policy once (``CALL
run_job``) and prints, as JSON, the hypertable's size before and after
(``hypertable_compression_stats``, ``hypertable_detailed_size``), the ratio, and
each column's share of the compressed bytes.

    .venv/bin/python bench/timescale_compression.py --database postgresql://postgres@127.0.0.1:PORT/postgres

``--database``: the admin URL of a server that preloads TimescaleDB.

Making the readings is the slow part (decoding register images costs about
2.6 ms a reading, a week 26 CPU minutes), so ``--jobs N`` makes them in N
processes, each a contiguous 1/N of the span from its own plant (started at
its part's first second: the plant starts over N - 1 times in the span), while
this process writes; ``--jobs 1`` (the default) is one continuous plant.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import platform
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from queue import Empty
from typing import Any, Final

import asyncpg
from scratch_database import scratch_database, timescale_storage
from site_readings import Values, stream

from hub.storage.base import StoredReading
from hub.storage.columns import READING_COLUMNS
from hub.storage.float32_codec import MASK_COLUMN

CHUNK = 3600  # readings generated and written at a time (an hour)


def _produce(
    values: Values, start: datetime, first_seq: int, hours: int, out: Queue[list[StoredReading]]
) -> None:
    """Put ``hours`` hours of readings from ``start`` on ``out``, an hour at a time."""
    source = stream(start, first_seq=first_seq, values=values)
    for _ in range(hours):
        out.put(list(itertools.islice(source, CHUNK)))


def _next_hour(queue: Queue[list[StoredReading]], producer: BaseProcess) -> list[StoredReading]:
    """The producer's next hour; an error if it died (a blocked ``get`` would wait forever)."""
    while True:
        try:
            return queue.get(timeout=1.0)
        except Empty:
            if not producer.is_alive():
                raise RuntimeError(f"{producer.name} ended early") from None


def _parts(hours: int, jobs: int) -> list[tuple[int, int]]:
    """``hours`` cut into ``jobs`` contiguous (first hour, hours) parts."""
    size, rest = divmod(hours, jobs)
    parts, first = [], 0
    for job in range(jobs):
        count = size + (1 if job < rest else 0)
        if count:
            parts.append((first, count))
        first += count
    return parts


async def fill(url: str, days: int, batch: int, values: Values, jobs: int) -> float:
    """Store ``days`` days of 1 Hz readings; returns the seconds it took."""
    start = (datetime.now(UTC) - timedelta(days=days + 8)).replace(microsecond=0)
    context = multiprocessing.get_context("spawn")
    producers = []
    for first, hours in _parts(days * 24, jobs):
        queue: Queue[list[StoredReading]] = context.Queue(maxsize=2)
        process = context.Process(
            target=_produce,
            args=(values, start + timedelta(hours=first), first * CHUNK, hours, queue),
            name=f"readings-from-hour-{first}",
            daemon=True,
        )
        producers.append((process, queue, hours))
    began = time.perf_counter()
    try:
        for process, _, _ in producers:
            process.start()
        async with timescale_storage(url) as storage:
            for hour in range(max(hours for _, _, hours in producers)):
                for process, queue, hours in producers:
                    if hour < hours:
                        rows = await asyncio.to_thread(_next_hour, queue, process)
                        for first in range(0, len(rows), batch):
                            await storage.write_readings(rows[first : first + batch])
    finally:
        for process, _, _ in producers:
            if process.is_alive():
                process.kill()
            process.join()
    return time.perf_counter() - began


async def _compressed_columns(conn: asyncpg.Connection) -> list[tuple[str, int]]:
    """Each column's bytes in the compressed chunks, largest first."""
    tables = await conn.fetch(
        "SELECT format('%I.%I', cc.schema_name, cc.table_name) AS name "
        "FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.chunk cc "
        "ON cc.id = c.compressed_chunk_id"
    )
    totals: dict[str, int] = {}
    for table in tables:
        columns = await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass "
            "AND attnum > 0 AND NOT attisdropped",
            table["name"],
        )
        sums = ", ".join(f'coalesce(sum(pg_column_size("{c["attname"]}")), 0)' for c in columns)
        values = await conn.fetchrow(f"SELECT {sums} FROM {table['name']}")
        for column, value in zip(columns, values, strict=True):
            totals[column["attname"]] = totals.get(column["attname"], 0) + int(value)
    return sorted(totals.items(), key=lambda item: -item[1])


async def measure(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
            "WHERE hypertable_name IS NOT NULL"
        )
        before = await conn.fetchrow("SELECT * FROM hypertable_detailed_size('readings')")
        job = await conn.fetchval(
            "SELECT job_id FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_compression' AND hypertable_name = 'readings'"
        )
        began = time.perf_counter()
        await conn.execute(f"CALL run_job({job})")
        took = time.perf_counter() - began
        stats = await conn.fetchrow("SELECT * FROM hypertable_compression_stats('readings')")
        after = await conn.fetchrow("SELECT * FROM hypertable_detailed_size('readings')")
        rows = await conn.fetchval("SELECT count(*) FROM readings")
        per_column = await _compressed_columns(conn)
        versions = await conn.fetchrow(
            "SELECT current_setting('server_version') AS postgres, extversion AS timescaledb "
            "FROM pg_extension WHERE extname = 'timescaledb'"
        )
        settings = await conn.fetch(
            "SELECT attname, segmentby_column_index, orderby_column_index "
            "FROM timescaledb_information.compression_settings WHERE hypertable_name = 'readings' "
            "AND (segmentby_column_index IS NOT NULL OR orderby_column_index IS NOT NULL)"
        )
    finally:
        await conn.close()
    before_total = int(stats["before_compression_total_bytes"])
    after_total = int(stats["after_compression_total_bytes"])
    return {
        "rows": rows,
        "compress_s": round(took, 1),
        "chunks": f"{stats['number_compressed_chunks']}/{stats['total_chunks']}",
        "hypertable_bytes_before": int(before["total_bytes"]),
        "hypertable_bytes_after": int(after["total_bytes"]),
        "compressed_chunks_before_bytes": before_total,
        "compressed_chunks_after_bytes": after_total,
        "ratio": round(before_total / after_total, 2),
        "bytes_per_reading_before": round(before_total / rows),
        "bytes_per_reading_after": round(after_total / rows, 1),
        "largest_compressed_columns_bytes_per_reading": {
            name: round(size / rows, 1) for name, size in per_column[:12]
        },
        "settings": [dict(r) for r in settings],
        **dict(versions),
    }


# --what-if: the same readings in another form, compressed as `readings` is:
# `extra` as one double precision column per name instead of jsonb. (The fields'
# float32 stand-ins, hub/storage/float32_codec.py, are what `readings` holds.)
WHAT_IF: Final = ("extra_columns",)


def _what_if_select(variant: str, names: list[str]) -> tuple[list[str], list[str]]:
    """The variant's extra column definitions and its ``SELECT`` list from ``readings``."""
    select = ["NULL::jsonb" if name == "extra" else name for name in READING_COLUMNS]
    select.append(MASK_COLUMN)
    definitions = [f"x{index} double precision" for index in range(len(names))]
    return definitions, select + [f"(extra->>'{name}')::float8" for name in names]


async def what_if(url: str) -> dict[str, Any]:
    """Each :data:`WHAT_IF` variant's bytes per reading before and after compression."""
    conn = await asyncpg.connect(url)
    results: dict[str, Any] = {}
    try:
        names = [
            r[0] for r in await conn.fetch("SELECT DISTINCT jsonb_object_keys(extra) FROM readings")
        ]
        interval = await conn.fetchval(
            "SELECT time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_name = 'readings'"
        )
        for number, variant in enumerate(WHAT_IF):
            table = f"what_if_{number}"
            definitions, select = _what_if_select(variant, names)
            await conn.execute(f"CREATE TABLE {table} (LIKE readings INCLUDING INDEXES)")
            for definition in definitions:
                await conn.execute(f"ALTER TABLE {table} ADD COLUMN {definition}")
            await conn.execute(
                f"SELECT create_hypertable('{table}', by_range('ts', $1::interval), "
                "create_default_indexes => false)",
                interval,
            )
            await conn.execute(
                f"INSERT INTO {table} SELECT {', '.join(select)} FROM readings ORDER BY ts"
            )
            await conn.execute(
                f"ALTER TABLE {table} SET (timescaledb.compress, "
                "timescaledb.compress_segmentby = 'device_id', "
                "timescaledb.compress_orderby = 'ts DESC')"
            )
            await conn.execute(f"SELECT compress_chunk(c) FROM show_chunks('{table}') c")
            stats = await conn.fetchrow(f"SELECT * FROM hypertable_compression_stats('{table}')")
            rows = await conn.fetchval(f"SELECT count(*) FROM {table}")
            before = int(stats["before_compression_total_bytes"])
            after = int(stats["after_compression_total_bytes"])
            results[variant] = {
                "ratio": round(before / after, 2),
                "bytes_per_reading_before": round(before / rows),
                "bytes_per_reading_after": round(after / rows, 1),
            }
    finally:
        await conn.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--values", type=Values, choices=list(Values), default=Values.REGISTERS)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--what-if", action="store_true", help="also measure the readings in other forms"
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    load_before = os.getloadavg()
    async with scratch_database(args.database) as url:
        filled = await fill(url, args.days, args.batch, args.values, args.jobs)
        result = await measure(url)
        if args.what_if:
            result["what_if"] = await what_if(url)
    result.update(
        days=args.days,
        values=args.values.value,
        jobs=args.jobs,
        fill_s=round(filled, 1),
        python=platform.python_version(),
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in os.getloadavg()],
    )
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    asyncio.run(main())
