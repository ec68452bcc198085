"""The dashboard's static files: requests per second the hub answers, and its CPU per request.

Starts ``ems hub serve`` (a subprocess, SQLite in a temporary directory), then
``--clients`` threads each fetch ``--path`` over their own keep-alive
connection as fast as the answers come, for ``--seconds``; once with plain
GETs (200, the whole file) and once revalidating with ``If-None-Match`` (the
ETag of the first answer: what a browser does with ``Cache-Control: no-cache``).
Prints requests per second, the hub's CPU time per request (its user+system
time over the run / requests) and the status codes seen.

    .venv/bin/python bench/static_files.py
    .venv/bin/python bench/static_files.py --path /static/dashboard.css --seconds 5
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
from hub_process import ROOT, start_hub, stop


def hammer(
    port: int, path: str, headers: dict[str, str], until: float, statuses: collections.Counter[int]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    seen: collections.Counter[int] = collections.Counter()
    while time.monotonic() < until:
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        answer.read()
        seen[answer.status] += 1
    connection.close()
    statuses.update(seen)  # Counter.update under the GIL, once per thread


def run(
    port: int, pid: int, path: str, headers: dict[str, str], clients: int, seconds: float
) -> str:
    hub = psutil.Process(pid)
    statuses: collections.Counter[int] = collections.Counter()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=hammer, args=(port, path, headers, until, statuses))
        for _ in range(clients)
    ]
    before, start = hub.cpu_times(), time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, after = time.monotonic() - start, hub.cpu_times()
    requests = sum(statuses.values())
    cpu = (after.user - before.user) + (after.system - before.system)
    return (
        f"{requests / elapsed:7.0f} req/s, hub CPU {cpu / requests * 1e6:5.0f} µs/request, "
        f"statuses {dict(statuses)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/static/js/common.js")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="ems-static-") as tmp:
        env = {**os.environ, "EMS_DATA_DIR": tmp, "PYTHONPATH": str(ROOT)}
        process, port = start_hub(Path(tmp) / "hub.log", env)
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", args.path)
            first = connection.getresponse()
            size, etag = len(first.read()), first.getheader("etag")
            connection.close()
            print(f"GET {args.path}: {first.status}, {size:,} bytes, etag {etag}")
            print(
                "  plain:       ", run(port, process.pid, args.path, {}, args.clients, args.seconds)
            )
            if etag is not None:
                revalidate = {"If-None-Match": etag}
                print(
                    "  revalidated: ",
                    run(port, process.pid, args.path, revalidate, args.clients, args.seconds),
                )
        finally:
            stop(process)
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
