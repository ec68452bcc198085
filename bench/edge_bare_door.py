"""A bare device door for ``bench/edge_drain.py --bare-door``: acks every reading at once.

No auth, no parsing beyond finding the seqs, no storage: the drain against it
is the edge's own cost (outbox reads, wire form, frames, acks, deletes).

    .venv/bin/python bench/edge_bare_door.py PORT     # prints "ready" when listening
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Final

from websockets.asyncio.server import ServerConnection, serve

SEQ: Final = re.compile(rb'"seq":(\d+)')


async def handler(ws: ServerConnection) -> None:
    async for message in ws:
        data = message.encode() if isinstance(message, str) else message
        seqs = [int(found) for found in SEQ.findall(data)]
        if seqs:  # a batch holds consecutive seqs (edge/uplink.py): one range
            await ws.send(json.dumps({"type": "ack", "ranges": [[min(seqs), max(seqs)]]}))


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, max_size=2**21, compression=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
