"""Edge outbox write throughput: readings/s committed to the SQLite buffer, by batch size.

Each append is one transaction (WAL, synchronous=FULL: an fsync per commit),
as the agent's writer does it. Readings are the simulated site's (~3.4 KB of
JSON each, extras included). Also times the uplink's side of the buffer: pages
of 1000 and the deletes of acked ranges.

    .venv/bin/python bench/edge_outbox_write.py               # 20,000 readings per size
    .venv/bin/python bench/edge_outbox_write.py --count 2000  # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_drain import bodies  # bench/ is on the path when run as a script

from edge.outbox import NewReading, Outbox, ts_us_of


async def write(path: Path, texts: list[str], batch: int) -> tuple[float, int]:
    start = datetime.now(UTC) - timedelta(days=2)
    commits = 0
    async with Outbox.open(path, max_bytes=1 << 31) as outbox:
        began = time.perf_counter()
        for first in range(0, len(texts), batch):
            await outbox.append(
                [
                    NewReading(
                        mono=float(n),
                        body=texts[n],
                        ts_us=ts_us_of(start + timedelta(seconds=n)),
                    )
                    for n in range(first, min(len(texts), first + batch))
                ],
                boot="bench",
            )
            commits += 1
        return time.perf_counter() - began, commits


async def read_and_delete(path: Path) -> tuple[float, float, int]:
    async with Outbox.open(path, max_bytes=1 << 31) as outbox:
        began = time.perf_counter()
        pages, cursor = [], -1
        while page := await outbox.page(after_seq=cursor, limit=1000):
            cursor = page[-1].seq
            wires = [stored.wire() for stored in page]  # what the uplink sends
            assert len(wires) == len(page)
            pages.append([stored.seq for stored in page])
        paged = time.perf_counter() - began
        began = time.perf_counter()
        for seqs in pages:
            await outbox.delete(seqs, acked_at=datetime.now(UTC))
        return paged, time.perf_counter() - began, sum(len(p) for p in pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    texts = bodies(args.count, datetime.now(UTC))
    print(f"readings of {sum(map(len, texts)) / len(texts):.0f} bytes of JSON each")
    with tempfile.TemporaryDirectory(prefix="edge-outbox-") as work:
        for batch in (1, 10, 100, 1000):
            count = min(args.count, 2000) if batch == 1 else args.count
            path = Path(work) / f"b{batch}.db"
            took, commits = asyncio.run(write(path, texts[:count], batch))
            print(
                f"batch {batch:>4}: {count / took:>9,.0f} readings/s,"
                f" {commits / took:>7,.1f} commits/s ({count} readings)"
            )
        paged, deleted, rows = asyncio.run(read_and_delete(Path(work) / "b1000.db"))
        print(f"uplink side: pages of 1000 with wire form {rows / paged:,.0f} readings/s;")
        print(f"             deletes of acked ranges (1000 per commit) {rows / deleted:,.0f}/s")


if __name__ == "__main__":
    main()
