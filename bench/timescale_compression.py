"""TimescaleDB's compression ratio on simulated 1 Hz readings of one device.

Writes ``--days`` days of full readings of the simulated site as the edge sends them
(bench/site_readings.py, with energy; ``--values plant``: the plant's own
full-precision floats), one continuous plant, one reading per second, old enough
for the compression policy (they end ``compress_after`` plus a day before now),
through ``PostgresStorage`` on TimescaleDB into a database created for the run,
then runs the compression policy once (``CALL run_job``) and prints, as JSON, the
hypertable's size before and after (``hypertable_compression_stats``,
``hypertable_detailed_size``) and the ratio.

    .venv/bin/python bench/timescale_compression.py --database postgresql://postgres@127.0.0.1:PORT/postgres

``--database``: the admin URL of a server that preloads TimescaleDB.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import platform
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from site_readings import Values, stream

from hub.storage.postgres import PostgresOptions, PostgresStorage
from hub.storage.schema import TimescaleMode, TimescaleOptions

CHUNK = 3600  # readings generated and written at a time (an hour)


async def fill(url: str, days: int, batch: int, values: Values) -> float:
    """Store ``days`` days of 1 Hz readings; returns the seconds it took."""
    options = PostgresOptions(timescale=TimescaleOptions(mode=TimescaleMode.REQUIRED))
    storage = PostgresStorage(url, options)
    await storage.open()
    start = (datetime.now(UTC) - timedelta(days=days + 8)).replace(microsecond=0)
    source = stream(start, values=values)
    began = time.perf_counter()
    try:
        for _ in range(days * 24):
            rows = list(itertools.islice(source, CHUNK))
            for first in range(0, len(rows), batch):
                await storage.write_readings(rows[first : first + batch])
    finally:
        await storage.close()
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
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--values", type=Values, choices=list(Values), default=Values.REGISTERS)
    args = parser.parse_args()
    name = f"ems_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.database)
    await admin.execute(f"CREATE DATABASE {name}")
    url = urlsplit(args.database)._replace(path=f"/{name}").geturl()
    try:
        filled = await fill(url, args.days, args.batch, args.values)
        result = await measure(url)
        result.update(
            days=args.days,
            values=args.values.value,
            fill_s=round(filled, 1),
            python=platform.python_version(),
            postgres=admin.get_server_version().major,
        )
        print(json.dumps(result, indent=2, default=str))
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
