"""What refreshing the minute rollup for late readings costs the writer on TimescaleDB.

A backlog older than the rollup policy's window is refreshed by the writer after
each batch commits (hub/storage/late_rollup.py); a backlog inside the window is
left to the policy. This writes the same backlog shape twice into one database,
``--batches`` batches of ``--batch`` readings of one device at 1 Hz: first 2 days
old (inside the window: commit only), then 10 days old (commit and refresh), and
prints the median time per batch and rows/s of each, as JSON.

    .venv/bin/python bench/late_backlog.py --database postgresql://postgres@127.0.0.1:PORT/postgres

``--database``: the admin URL of a server that preloads TimescaleDB; a database is
created there for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta

from scratch_database import scratch_database, timescale_storage

from hub.storage.base import StoredReading
from hub.storage.postgres import PostgresStorage
from telemetry import Reading


def backlog(start: datetime, count: int) -> list[StoredReading]:
    received = datetime.now(UTC)
    return [
        StoredReading(
            "bench-site",
            Reading.model_validate(
                {
                    "seq": i,
                    "ts": (start + timedelta(seconds=i)).isoformat(),
                    "grid": {"power_w": -850.0 + i % 97, "voltage_v": 230.8},
                    "battery": {"power_w": 1200.0, "soc_pct": 55.0 + i % 40},
                    "solar": {"pv_power_w": 3100.0 + i % 300},
                }
            ),
            received,
        )
        for i in range(count)
    ]


async def write_backlog(
    storage: PostgresStorage, start: datetime, batches: int, size: int
) -> dict[str, float]:
    rows = backlog(start, batches * size)
    times = []
    for b in range(batches):
        began = time.perf_counter()
        await storage.write_readings(rows[b * size : (b + 1) * size])
        times.append(time.perf_counter() - began)
    return {
        "median_batch_ms": round(statistics.median(times) * 1000, 1),
        "rows_per_s": round(batches * size / sum(times)),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    async with scratch_database(args.database) as url, timescale_storage(url) as storage:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        inside = await write_backlog(storage, now - timedelta(days=2), args.batches, args.batch)
        older = await write_backlog(storage, now - timedelta(days=10), args.batches, args.batch)
    print(
        json.dumps(
            {
                "python": platform.python_version(),
                "timescaledb": storage.timescale.version,
                "batches": args.batches,
                "batch": args.batch,
                "2_days_old_commit_only": inside,
                "10_days_old_commit_and_refresh": older,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
