"""Hub throughput and latency, against a bare ``websockets`` fan-out server in the same run.

Starts the hub (``ems hub serve``, a subprocess) on a fresh PostgreSQL database,
gives every simulated device a token, and drives N devices and M dashboards
from separate load-generator processes. Two phases per server:

1. latency: the devices together send ``--rate`` live readings per second;
   each dashboard watches one device and measures device -> dashboard latency
   (the reading carries its send time in ``extra.t_send``);
2. throughput: every device sends as fast as its socket lets it; the figure is
   readings per second stored (committed and acked: ``ems_writer_rows_committed_total``)
   for the hub, and readings per second received for the bare server.

Then the same load against bench/bare_fanout.py, and the ratio. Prints the
figures; the hub's RSS is sampled throughout.

    python bench/hub_throughput.py            # full size: 1000 devices, 100 dashboards
    python bench/hub_throughput.py --devices 20 --dashboards 5 --rate 200 --seconds 3   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from hub_process import ROOT, start_hub, stop, store_tokens, wait_for_line

ADMIN_DSN = os.environ.get("EMS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Plan:
    port: int
    devices: list[tuple[str, str]]  # (device_id, token) of this worker
    watched: list[str]  # device ids this worker's dashboards watch
    rate_per_device: float
    latency_start: float  # wall-clock instants shared by all workers
    latency_end: float
    throughput_end: float
    acks: bool
    window: int


# One realistic reading (all four sections), filled in with a cheap format so the
# load generator spends its CPU on sockets, not on JSON encoding.
_READING = (
    '{"seq":%d,"ts":"%s",'
    '"inverter":{"ac_power_w":3120.5,"ac_voltage_v":231.2,"ac_frequency_hz":50.01},'
    '"grid":{"power_w":-850.0,"voltage_v":230.8,"frequency_hz":50.01},'
    '"solar":{"pv_power_w":3230.0,"pv_voltage_v":380.2},'
    '"battery":{"soc_pct":76.5,"power_w":-1200.0,"voltage_v":51.9},'
    '"extra":{"t_send":%r}}'
)


_second_cache: list[Any] = [-1, ""]  # [whole second, its "%Y-%m-%dT%H:%M:%S"]


def reading(seq: int) -> str:
    """A reading stamped now; only the seq, the microseconds and t_send are formatted."""
    now = time.time()
    second = int(now)
    if second != _second_cache[0]:
        _second_cache[0] = second
        _second_cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    ts = f"{_second_cache[1]}.{int((now - second) * 1e6):06d}Z"
    return _READING % (seq, ts, now)


async def run_worker(plan: Plan) -> dict[str, Any]:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed

    base = f"ws://127.0.0.1:{plan.port}"
    latencies: list[float] = []
    sent = {"latency": 0, "throughput": 0}
    acked = 0

    async def drain_acks(client: ClientConnection, mine: list[int], wake: asyncio.Event) -> None:
        nonlocal acked
        try:
            async for message in client:
                frame = json.loads(message)
                for first, last in frame.get("ranges", ()):
                    acked += last - first + 1
                    mine[0] += last - first + 1
                wake.set()
        except ConnectionClosed:
            pass

    async def device(device_id: str, token: str, offset: float) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with connect(
            f"{base}/ws/device/{device_id}", additional_headers=headers, compression=None
        ) as client:
            mine = [0]  # readings of this device acked so far
            wake = asyncio.Event()
            reader = asyncio.create_task(drain_acks(client, mine, wake))
            seq = 0
            interval = 1.0 / plan.rate_per_device
            next_at = plan.latency_start + offset * interval
            while (now := time.time()) < plan.latency_end:
                if now < next_at:
                    await asyncio.sleep(next_at - now)
                    continue
                await client.send(reading(seq))
                seq += 1
                sent["latency"] += 1
                next_at += interval
            while time.time() < plan.throughput_end:
                if plan.acks and seq - mine[0] >= plan.window:
                    # Like the edge with a backlog: a bounded number of readings in
                    # flight; the hub's acks (after commit) pace the device.
                    wake.clear()
                    try:
                        # The edge's ack timeout (edge/uplink.py, ack_timeout_s).
                        await asyncio.wait_for(wake.wait(), 15.0)
                    except TimeoutError:
                        mine[0] = seq  # dropped unacked (queue full); a real edge re-sends
                    continue
                await client.send(reading(seq))
                seq += 1
                sent["throughput"] += 1
                if seq % 8 == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(1.0)  # the last acks
            reader.cancel()

    async def dashboard(device_id: str) -> None:
        async with connect(f"{base}/ws/dashboard/{device_id}", compression=None) as client:
            try:
                async with asyncio.timeout(max(0.0, plan.latency_end - time.time()) + 0.5):
                    async for message in client:
                        now = time.time()
                        frame = json.loads(message)
                        t_send = frame.get("extra", {}).get("t_send")
                        if t_send is not None and plan.latency_start <= t_send < plan.latency_end:
                            latencies.append(now - t_send)
            except TimeoutError:
                pass
            # Throughput phase: keep reading, do not measure.
            try:
                async with asyncio.timeout(max(0.0, plan.throughput_end - time.time()) + 1.0):
                    async for _ in client:
                        pass
            except TimeoutError:
                pass

    count = max(1, len(plan.devices))
    async with asyncio.TaskGroup() as tasks:
        for device_id in plan.watched:
            tasks.create_task(dashboard(device_id))
        await asyncio.sleep(0.5)
        for index, (device_id, token) in enumerate(plan.devices):
            tasks.create_task(device(device_id, token, index / count))
    return {"latencies": latencies, "sent": sent, "acked": acked, "cpu_s": time.process_time()}


def worker_main(plan: Plan, results: Any) -> None:
    import uvloop

    results.put(uvloop.run(run_worker(plan)))


def hub_metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def bare_stats(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as answer:
        data: dict[str, float] = json.loads(answer.read())
    return data


def stored_count(samples: dict[str, float]) -> float:
    return samples.get("ems_writer_rows_committed_total", 0.0)


def run_load(
    args: argparse.Namespace, port: int, tokens: list[tuple[str, str]], *, hub: bool, pid: int
) -> dict[str, Any]:
    warmup = 3.0 + len(tokens) / 500
    start = time.time() + warmup
    latency_end = start + args.seconds
    throughput_end = latency_end + args.seconds
    step = max(1, len(tokens) // max(1, args.dashboards))
    watched = [tokens[i][0] for i in range(0, len(tokens), step)][: args.dashboards]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    workers = []
    for w in range(args.workers):
        plan = Plan(
            port=port,
            devices=tokens[w :: args.workers],
            watched=watched[w :: args.workers],
            rate_per_device=args.rate / len(tokens),
            latency_start=start,
            latency_end=latency_end,
            throughput_end=throughput_end,
            acks=hub,
            window=args.window,
        )
        process = ctx.Process(target=worker_main, args=(plan, results), daemon=True)
        process.start()
        workers.append(process)
    server = psutil.Process(pid)
    rss_peak = 0
    marks: dict[str, dict[str, float]] = {}
    # The steady window: from a few seconds into the throughput phase (the backlog of
    # the latency phase and the ramp-up are behind us) to its end.
    steady_from = latency_end + min(3.0, args.seconds / 4)
    cpu_latency = [0.0, 0.0]  # hub CPU seconds at the latency phase's start and end
    end_sample: dict[str, float] | None = None
    while time.time() < throughput_end + 1.5:
        rss_peak = max(rss_peak, server.memory_info().rss)
        now = time.time()
        if not cpu_latency[0] and now >= start:
            cpu_latency[0] = sum(server.cpu_times()[:2])
        if not cpu_latency[1] and now >= latency_end:
            cpu_latency[1] = sum(server.cpu_times()[:2])
        if "t0" not in marks and now >= steady_from:
            marks["t0"] = hub_metrics(port) if hub else bare_stats(port)
            marks["t0"]["at"] = now
            marks["t0"]["cpu"] = sum(server.cpu_times()[:2])
        if end_sample is None and now >= throughput_end:
            end_sample = hub_metrics(port) if hub else bare_stats(port)
            end_sample["at"] = now
            end_sample["cpu"] = sum(server.cpu_times()[:2])
        time.sleep(0.05)
    assert end_sample is not None
    end_at = end_sample["at"]
    outputs = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(30)
    latencies = sorted(x for out in outputs for x in out["latencies"])
    duration = max(1e-6, end_at - marks["t0"]["at"])
    if hub:
        rate = (stored_count(end_sample) - stored_count(marks["t0"])) / duration
        ingested = (
            end_sample.get('ems_readings_in_total{path="live"}', 0)
            - marks["t0"].get('ems_readings_in_total{path="live"}', 0)
        ) / duration
    else:
        rate = ingested = (end_sample["received"] - marks["t0"]["received"]) / duration
    server_cpu = end_sample["cpu"] - marks["t0"]["cpu"]
    return {
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "samples": len(latencies),
        "rate": rate,
        "ingested": ingested,
        "rss_mib": rss_peak / 2**20,
        "sent": sum(out["sent"]["throughput"] for out in outputs) / args.seconds,
        "acked": sum(out["acked"] for out in outputs),
        "end": end_sample,
        "t0": marks["t0"],
        # Server CPU per reading ingested, in the steady window and in the latency phase.
        "cpu_us": 1e6 * server_cpu / max(1.0, ingested * duration),
        "cpu_us_latency": 1e6
        * (cpu_latency[1] - cpu_latency[0])
        / max(1.0, args.rate * args.seconds),
        "cpu_share": server_cpu / duration,
        "load_cpu_s": sum(out["cpu_s"] for out in outputs),
        "duration": duration,
    }


async def admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="hub throughput and latency vs a bare server")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--dashboards", type=int, default=100)
    parser.add_argument(
        "--rate", type=float, default=2000.0, help="readings/s in the latency phase"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--window",
        type=int,
        help="unacked readings a hub device may have in flight "
        "(default: 40,000 in all, under the writer's 50,000-reading queue)",
    )
    parser.add_argument("--database", help="postgresql://... (default: a fresh database, dropped)")
    parser.add_argument("--hub-log", type=Path, help="keep the hub's log in this file")
    args = parser.parse_args()
    if args.window is None:
        args.window = max(16, 40_000 // args.devices)

    fresh = None
    database = args.database
    if database is None:
        fresh = f"ems_bench_{secrets.token_hex(4)}"
        asyncio.run(admin(f'CREATE DATABASE "{fresh}"'))
        database = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{fresh}"
    try:
        tokens = asyncio.run(
            store_tokens(database, None, [f"bench_{i:05d}" for i in range(args.devices)])
        )
        with tempfile.TemporaryDirectory() as tmp:
            log = args.hub_log or Path(tmp) / "hub.log"
            env = {**os.environ, "EMS_DATA_DIR": tmp}
            hub, port = start_hub(log, env, database)
            try:
                hub_result = run_load(args, port, tokens, hub=True, pid=hub.pid)
            finally:
                stop(hub)
            bare_log = Path(tmp) / "bare.log"
            with bare_log.open("wb") as out:
                bare = subprocess.Popen(
                    [sys.executable, str(ROOT / "bench" / "bare_fanout.py"), "--port", "0"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                port = wait_for_line(bare, bare_log, re.compile(rb"listening on (\d+)"))
                bare_result = run_load(args, port, tokens, hub=False, pid=bare.pid)
            finally:
                stop(bare)
    finally:
        if fresh is not None:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))

    end = hub_result["end"]
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"load: {args.devices} devices, {args.dashboards} dashboards, "
        f"{args.workers} load processes, {args.seconds:.0f} s per phase"
    )
    for name, result in (("hub", hub_result), ("bare websockets", bare_result)):
        print(
            f"[{name}] latency at {args.rate:.0f} readings/s: p50 {result['p50_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms ({result['samples']} samples)"
        )
        print(
            f"[{name}] throughput: {result['rate']:.0f} readings/s "
            f"{'stored' if name == 'hub' else 'received'} "
            f"(offered {result['sent']:.0f}/s, ingested {result['ingested']:.0f}/s); "
            f"peak RSS {result['rss_mib']:.0f} MiB"
        )
        print(
            f"[{name}] server CPU: {result['cpu_us']:.0f} us per reading in the steady "
            f"window ({100 * result['cpu_share']:.0f} % of a core), "
            f"{result['cpu_us_latency']:.0f} us per reading in the latency phase; "
            f"load generators used {result['load_cpu_s']:.1f} CPU-s in all"
        )
    batch = end.get("ems_writer_average_batch_size", 0.0)
    queue_full = end.get('ems_dropped_total{reason="writer_queue_full"}', 0.0)
    slow = end.get('ems_dropped_total{reason="dashboard_slow"}', 0.0)
    print(
        f"[hub] writer: average batch {batch:.0f} rows; dropped: writer queue full "
        f"{queue_full:.0f}, dashboard frames {slow:.0f}"
    )
    t0 = hub_result["t0"]
    batches = end.get("ems_writer_batches_committed_total", 0.0) - t0.get(
        "ems_writer_batches_committed_total", 0.0
    )
    if batches:
        commit_s = end.get("ems_writer_commit_seconds_total", 0.0) - t0.get(
            "ems_writer_commit_seconds_total", 0.0
        )
        rows = stored_count(end) - stored_count(t0)
        print(
            f"[hub] writer in the steady window: {batches:.0f} batches of {rows / batches:.0f} "
            f"rows on average, {1000 * commit_s / batches:.0f} ms each from conversion to commit"
        )
    ratio = hub_result["rate"] / bare_result["rate"] if bare_result["rate"] else float("nan")
    print(f"hub / bare throughput: {100 * ratio:.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
