"""A bare ``websockets`` fan-out server: the yardstick for bench/hub_throughput.py.

Same doors as the hub (``/ws/device/{id}``, ``/ws/dashboard/{id}``) but no auth,
no validation, no storage and no acks: each device message is forwarded as is
to that device's dashboards. ``GET /stats`` answers ``{"received": N, "sent": M}``.

    python bench/bare_fanout.py --port 0     # prints "listening on PORT"
"""

from __future__ import annotations

import argparse
import json
from http import HTTPStatus

import uvloop
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

subscribers: dict[str, set[ServerConnection]] = {}
counts = {"received": 0, "sent": 0}


def stats(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/stats":
        body = json.dumps(counts).encode()
        headers = Headers({"Content-Type": "application/json"})
        return Response(HTTPStatus.OK.value, "OK", headers, body)
    return None


async def handler(connection: ServerConnection) -> None:
    path = connection.request.path if connection.request else ""
    _, _, door, device_id = path.split("/", 3) if path.count("/") >= 3 else ("", "", "", "")
    if door == "device":
        try:
            async for message in connection:
                counts["received"] += 1
                dashboards = subscribers.get(device_id)
                if dashboards:
                    # websockets' own fan-out: writes without waiting on any dashboard.
                    broadcast(dashboards, message)
                    counts["sent"] += len(dashboards)
        except ConnectionClosed:
            pass
    elif door == "dashboard":
        subscribers.setdefault(device_id, set()).add(connection)
        try:
            await connection.wait_closed()
        finally:
            subscribers[device_id].discard(connection)


async def main(port: int) -> None:
    server: Server
    async with serve(
        handler,
        "127.0.0.1",
        port,
        process_request=stats,
        compression=None,
        max_size=1024 * 1024,
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on {bound}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    uvloop.run(main(parser.parse_args().port))
