"""Hostile Modbus TCP clients, in a process of their own (the gateway's tests and benchmark).

Run as ``python -m tests.edge.gateway_attack PORT SECONDS UNIT POLLED_ADDRESS
POLLED_COUNT OTHER_ADDRESS OTHER_COUNT``: for SECONDS, at once, a client that sends
half a frame and stalls, clients that send garbage (reconnecting each time they are
closed), two that flood pipelined reads (of polled registers, and of others), and one
that sends requests and never reads its answers. Prints one JSON line of counts.
Its own process, so that the attack's CPU is not the agent's event loop's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import sys
from collections.abc import Awaitable, Callable

# Bytes that are no MBAP header (protocol id 0xAAAA): simulation/modbus_server.py's GARBAGE.
GARBAGE = bytes.fromhex("aa aa 55 55 aa aa 55 00 ff 13")


def read_request(transaction: int, unit: int, address: int, count: int) -> bytes:
    """A Modbus TCP read of holding registers, as raw bytes (MBAP header and PDU)."""
    return struct.pack(">HHHBBHH", transaction & 0xFFFF, 0, 6, unit, 3, address, count)


async def attack(
    port: int, seconds: float, unit: int, polled: tuple[int, int], other: tuple[int, int]
) -> dict[str, int]:
    counts = {
        "garbage_connections": 0,
        "flood_requests": 0,
        "flood_answer_bytes": 0,
        "connections_closed_by_the_gateway": 0,
    }
    stop = asyncio.Event()

    async def half_frame() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(read_request(1, unit, *polled)[:5])  # and nothing more
        await stop.wait()
        writer.close()

    async def garbage() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GARBAGE * 20)
        await reader.read()  # until the gateway closes it
        writer.close()
        counts["garbage_connections"] += 1

    async def flood(address: int, count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        transaction = 0
        while not stop.is_set():
            for _ in range(50):
                transaction += 1
                writer.write(read_request(transaction, unit, address, count))
            await writer.drain()
            counts["flood_requests"] += 50
            answer = await reader.read(65536)
            if not answer:
                break  # closed by the gateway
            counts["flood_answer_bytes"] += len(answer)
        writer.close()

    async def never_reads() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not stop.is_set() and not writer.transport.is_closing():
            writer.write(read_request(1, unit, *polled) * 100)
            await asyncio.sleep(0.01)  # never drained: its buffers fill and stay full
        writer.transport.abort()

    async def again(client: Callable[[], Awaitable[None]]) -> None:
        """``client`` until ``stop``, connecting again whenever the gateway closes it."""
        while not stop.is_set():
            try:
                await client()
            except OSError:
                counts["connections_closed_by_the_gateway"] += 1
                await asyncio.sleep(0.001)

    async def timer() -> None:
        await asyncio.sleep(seconds)
        stop.set()

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(timer())
        tasks.create_task(again(half_frame))
        for _ in range(2):
            tasks.create_task(again(garbage))
        tasks.create_task(again(lambda: flood(*polled)))
        tasks.create_task(again(lambda: flood(*other)))
        tasks.create_task(again(never_reads))
    return counts


def main() -> None:
    # Writing to a connection the gateway closed is the point here, not news.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    port, seconds, unit, *numbers = sys.argv[1:]
    a, b, c, d = (int(n) for n in numbers)
    counts = asyncio.run(attack(int(port), float(seconds), int(unit), (a, b), (c, d)))
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
