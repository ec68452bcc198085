"""A child process for the SIGKILL test: appends batches forever, printing each committed seq.

Run as ``python -m tests.edge.outbox_child BUFFER_PATH``. A line ``seq`` on
stdout means every reading up to that seq is committed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from edge.outbox import NewReading, Outbox


def body(n: int) -> str:
    return json.dumps({"grid": {"power_w": float(n), "voltage_v": 230.0}, "extra": {"n": n}})


async def main(path: Path) -> None:
    async with Outbox.open(path, max_bytes=1 << 30) as outbox:
        n = 0
        while True:
            size = 1 + n % 37
            batch = [
                NewReading(mono=float(n + i), body=body(n + i), ts_us=1_800_000_000_000_000 + n + i)
                for i in range(size)
            ]
            stored = await outbox.append(batch, boot="child")
            n += size
            print(stored[-1].seq, flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
