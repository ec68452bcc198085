"""What the hub's metrics cost: a counter bump on the hot path, and a scrape of /metrics.

1. hot path (in this process): the bumps the doors make (hub/metrics.py
   ``HubCounters``: a plain ``int`` attribute, a ``collections.Counter`` key)
   against prometheus_client's own ``Counter.inc()``, unlabelled, labelled
   through ``.labels(...)`` each time, and on a child bound once. Nanoseconds per
   bump: the best and the median of ``--repeats`` runs of ``--bumps`` bumps.
2. scrape (``ems hub serve`` as a subprocess, SQLite in a temporary directory):
   ``--devices`` devices connect through the device door and each has a reading
   acked, then ``GET /metrics`` is fetched ``--blocks`` x ``--scrapes`` times in a
   row over one keep-alive connection. Prints the client's latency (median, p90)
   and the hub's CPU time per scrape (its user+system time over a block /
   scrapes; the best and the median block, as the machine is shared), which is
   what a scrape costs the hub whatever the client.

    .venv/bin/python bench/metrics_cost.py
    .venv/bin/python bench/metrics_cost.py --bumps 200000 --scrapes 100 --blocks 3 --devices 5
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import statistics
import tempfile
import time
import timeit
from pathlib import Path

import psutil
from hub_process import ROOT, start_hub, stop, store_tokens
from hub_throughput import reading
from websockets.asyncio.client import ClientConnection, connect


def per_bump_ns(statement: str, setup: str, bumps: int, repeats: int) -> tuple[float, float]:
    """(best, median) nanoseconds per execution of ``statement``."""
    runs = timeit.repeat(statement, setup, repeat=repeats, number=bumps, globals={})
    per = [run / bumps * 1e9 for run in runs]
    return min(per), statistics.median(per)


HOT_PATH = {
    "ours: int attribute += 1": (
        "c.acks_sent += 1",
        "from hub.metrics import HubCounters; c = HubCounters()",
    ),
    "ours: Counter[label] += 1": (
        "c.readings_in['live'] += 1",
        "from hub.metrics import HubCounters; c = HubCounters()",
    ),
    "prometheus_client Counter.inc()": (
        "m.inc()",
        "from prometheus_client import CollectorRegistry, Counter\n"
        "m = Counter('x', 'x', registry=CollectorRegistry())",
    ),
    "prometheus_client .labels('live').inc()": (
        "m.labels('live').inc()",
        "from prometheus_client import CollectorRegistry, Counter\n"
        "m = Counter('x', 'x', ['path'], registry=CollectorRegistry())",
    ),
    "prometheus_client bound child .inc()": (
        "m.inc()",
        "from prometheus_client import CollectorRegistry, Counter\n"
        "m = Counter('x', 'x', ['path'], registry=CollectorRegistry()).labels('live')",
    ),
}


def hot_path(bumps: int, repeats: int) -> None:
    print(f"hot path: ns per bump, best / median of {repeats} x {bumps:,} bumps")
    for name, (statement, setup) in HOT_PATH.items():
        best, median = per_bump_ns(statement, setup, bumps, repeats)
        print(f"  {name:42s} {best:7.1f} / {median:7.1f}")


async def connect_devices(port: int, tokens: list[tuple[str, str]]) -> list[ClientConnection]:
    """Every device connected, each with one reading acked; the open sockets."""
    sockets = []
    for device_id, token in tokens:
        socket = await connect(
            f"ws://127.0.0.1:{port}/ws/device/{device_id}",
            additional_headers={"Authorization": f"Bearer {token}"},
        )
        await socket.send(reading(1))
        async with asyncio.timeout(30):
            while '"ack"' not in str(await socket.recv()):
                pass
        sockets.append(socket)
    return sockets


def scrape(port: int, hub_pid: int, scrapes: int, blocks: int) -> None:
    hub = psutil.Process(hub_pid)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = b""

    def get() -> float:
        nonlocal body
        start = time.perf_counter()
        connection.request("GET", "/metrics")
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise SystemExit(f"/metrics answered {answer.status}")
        return time.perf_counter() - start

    for _ in range(20):  # warm up: imports, first collections
        get()
    latencies: list[float] = []
    cpu_per_scrape: list[float] = []
    for _ in range(blocks):
        before = hub.cpu_times()
        latencies += [get() for _ in range(scrapes)]
        after = hub.cpu_times()
        cpu = (after.user - before.user) + (after.system - before.system)
        cpu_per_scrape.append(cpu / scrapes)
    connection.close()
    latencies.sort()
    lines = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    print(f"scrape: {blocks} x {scrapes} x GET /metrics, {len(body):,} bytes, {lines} samples")
    print(
        f"  latency median {statistics.median(latencies) * 1e3:.2f} ms, "
        f"p90 {latencies[int(len(latencies) * 0.9)] * 1e3:.2f} ms; hub CPU per scrape "
        f"best block {min(cpu_per_scrape) * 1e3:.2f} ms, "
        f"median block {statistics.median(cpu_per_scrape) * 1e3:.2f} ms"
    )


async def scrape_phase(devices: int, scrapes: int, blocks: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ems-metrics-") as tmp:
        data_dir = Path(tmp)
        env = {**os.environ, "EMS_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
        tokens = await store_tokens(None, data_dir, [f"bench_{i:03d}" for i in range(devices)])
        process, port = start_hub(data_dir / "hub.log", env)
        try:
            sockets = await connect_devices(port, tokens)
            await asyncio.to_thread(scrape, port, process.pid, scrapes, blocks)
            for socket in sockets:
                await socket.close()
        finally:
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bumps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scrapes", type=int, default=200, help="per block")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--devices", type=int, default=20)
    args = parser.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    hot_path(args.bumps, args.repeats)
    asyncio.run(scrape_phase(args.devices, args.scrapes, args.blocks))
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
