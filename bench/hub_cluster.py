"""One, two and three hub processes of a cluster under the same load (docs/benchmarks.md).

For each cluster size it starts that many ``ems hub serve --cluster`` processes
(one private ``redis-server``, one fresh PostgreSQL database for the run), spreads
the devices over the hubs and puts each device's dashboard on *another* hub (the
same hub when there is one), then:

1. latency: the devices together send ``--rate`` live readings per second; each
   reading carries its send time (``extra.t_send``, ``time.time()``: one machine,
   one clock); the dashboards measure device -> dashboard latency, which crosses
   Redis whenever there are two hubs or more;
2. throughput: every device sends as fast as its window of unacked readings
   lets it (``--window`` per device, as the edge does); the figure is readings
   **stored** per second (``ems_writer_rows_committed_total`` summed over the
   hubs) from 3 s into the phase (a third of it, if shorter) to its end.

Redis's and the hubs' CPU are read from /proc for each phase. With three hubs it
then kills the first hub with SIGKILL while the devices stream at the latency
rate: its devices reconnect to the next hub, and the figure is the time from the
kill until each of them is acked again.

    python bench/hub_cluster.py                      # 300 devices, 2,000/s, 10 s phases
    python bench/hub_cluster.py --devices 30 --rate 200 --seconds 3   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hub_process import ROOT, free_port, store_tokens, wait_for_line

ADMIN_DSN = os.environ.get("EMS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVING = __import__("re").compile(rb"Uvicorn running on http://[\d.]+:(\d+)")
TEMPLATE = (
    '{{"seq":{seq},"ts":"{ts}","grid":{{"power_w":-850.0,"voltage_v":230.8}},'
    '"solar":{{"pv_power_w":3230.0}},"battery":{{"soc_pct":76.5,"power_w":-1200.0}},'
    '"extra":{{"t_send":{t}}}}}'
)


@dataclass(frozen=True)
class Plan:
    ports: list[int]
    devices: list[tuple[str, str, int]]  # (device id, token, index of its hub)
    watched: list[tuple[str, int]]  # (device id, index of the dashboard's hub)
    rate_per_device: float
    window: int
    latency_start: float
    latency_end: float
    throughput_end: float
    kill_end: float  # 0: no kill phase


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    back_after_kill: list[float] = field(default_factory=list)  # first ack (wall) after the kill
    back: set[str] = field(default_factory=set)  # devices acked again after the kill
    ingress: list[float] = field(default_factory=list)  # device -> its hub (received_at)


def _ts(seq: int) -> str:
    # Distinct per seq, inside the hub's accepted window (not more than 5 min ahead).
    base = 1_764_000_000 + seq * 0.001
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base)) + f".{seq % 1000:03d}Z"


async def _device(
    plan: Plan, device: str, token: str, hub: int, result: Result, killed: Any
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    seq = 0
    sent_unacked: set[int] = set()
    index = hub
    end = plan.kill_end or plan.throughput_end
    while time.time() < end:
        url = f"ws://127.0.0.1:{plan.ports[index % len(plan.ports)]}/ws/device/{device}"
        try:
            client = await connect(url, additional_headers={"Authorization": f"Bearer {token}"})
        except Exception:  # noqa: BLE001 - a dead hub: try the next
            index += 1
            await asyncio.sleep(0.05)
            continue
        reconnected = index != hub

        async def receive(client: Any = client, reconnected: bool = reconnected) -> None:
            async for message in client:
                frame = json.loads(message)
                if frame.get("type") == "ack":
                    for first, last in frame["ranges"]:
                        sent_unacked.difference_update(range(first, last + 1))
                    if reconnected and killed.value and device not in result.back:
                        result.back_after_kill.append(time.time())
                        result.back.add(device)

        receiver = asyncio.create_task(receive())
        try:
            for s in sorted(sent_unacked):
                await client.send(TEMPLATE.format(seq=s, ts=_ts(s), t=time.time()))
            while True:
                now = time.time()
                if now >= end:
                    break
                fast = plan.latency_end <= now < plan.throughput_end
                if fast and len(sent_unacked) >= plan.window:
                    await asyncio.sleep(0.005)
                    continue
                seq += 1
                sent_unacked.add(seq)
                await client.send(TEMPLATE.format(seq=seq, ts=_ts(seq), t=time.time()))
                if receiver.done():
                    break
                await asyncio.sleep(0 if fast else 1 / plan.rate_per_device)
        except ConnectionClosed:
            pass
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
            await client.close()
        index += 1


async def _dashboard(plan: Plan, device: str, hub: int, result: Result) -> None:
    from websockets.asyncio.client import connect

    end = plan.kill_end or plan.throughput_end
    url = f"ws://127.0.0.1:{plan.ports[hub]}/ws/dashboard/{device}"
    try:
        async with connect(url, max_queue=None) as client:
            while time.time() < end:
                try:
                    message = await asyncio.wait_for(client.recv(), 1.0)
                except TimeoutError:
                    continue
                now = time.time()
                if plan.latency_start + 1 <= now < plan.latency_end and '"t_send"' in message:
                    frame = json.loads(message)
                    t_send = frame["extra"]["t_send"]
                    result.latencies.append(now - t_send)
                    # The part up to the device's hub (its clock: the same machine's).
                    received = datetime.fromisoformat(frame["received_at"].replace("Z", "+00:00"))
                    result.ingress.append(received.timestamp() - t_send)
    except Exception:  # noqa: BLE001 - its hub was killed: the figure is the devices'
        return


def _load(plan: Plan, killed: Any, out: Any) -> None:
    import uvloop

    async def run() -> Result:
        result = Result()
        await asyncio.gather(
            *(_device(plan, d, t, h, result, killed) for d, t, h in plan.devices),
            *(_dashboard(plan, d, h, result) for d, h in plan.watched),
        )
        return result

    result = uvloop.run(run())
    out.put((result.latencies, result.back_after_kill, result.ingress))


def _committed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("ems_writer_rows_committed_total"):
            return float(line.split()[1])
    return 0.0


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _admin(sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def _start_redis(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    binary = shutil.which("redis-server") or "redis-server"
    redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=(work / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(8).startswith(b"+PONG"):
                    return redis, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def _start_hubs(
    count: int, work: Path, database: str, redis_url: str
) -> list[tuple[subprocess.Popen[bytes], int]]:
    hubs = []
    for i in range(count):
        log = work / f"hub{count}-{i}.log"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EMS_")},
            "EMS_DATA_DIR": str(work),
            "EMS_DATABASE_URL": database,
            "EMS_CLUSTER_URL": redis_url,
            "EMS_CLUSTER_HUB_ID": f"bench{count}-{i}",
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "ems", "hub", "serve", "--port", "0"],
                stdout=subprocess.DEVNULL,
                stderr=out,
                env=env,
                cwd=ROOT,
            )
        hubs.append((process, wait_for_line(process, log, SERVING)))
    return hubs


def run_size(
    count: int, args: argparse.Namespace, work: Path, database: str, redis: Any, redis_url: str
) -> dict[str, Any]:
    hubs = _start_hubs(count, work, database, redis_url)
    ports = [port for _, port in hubs]
    ids = [f"c{count}_{i:04d}_{secrets.token_hex(2)}" for i in range(args.devices)]
    tokens = asyncio.run(store_tokens(database, None, ids))
    devices = [(d, t, i % count) for i, (d, t) in enumerate(tokens)]
    watched = [(d, (h + 1) % count) for d, _, h in devices]
    start = time.time() + 3.0
    latency_end = start + args.seconds
    throughput_end = latency_end + args.seconds
    kill = count == 3 and not args.no_kill
    kill_at = throughput_end + 2.0
    kill_end = kill_at + args.seconds if kill else 0.0
    killed = mp.Value("d", 0.0)
    out: Any = mp.Queue()
    workers = []
    for w in range(args.load_processes):
        plan = Plan(
            ports,
            devices[w :: args.load_processes],
            watched[w :: args.load_processes],
            args.rate / args.devices,
            args.window,
            start,
            latency_end,
            throughput_end,
            kill_end,
        )
        process = mp.Process(target=_load, args=(plan, killed, out))
        process.start()
        workers.append(process)
    pids = [p.pid for p, _ in hubs]

    def sample() -> tuple[float, float, float]:
        return time.time(), _cpu(redis.pid), sum(_cpu(pid) for pid in pids)

    time.sleep(max(0.0, start + 1 - time.time()))
    lat0 = sample()
    time.sleep(max(0.0, latency_end - time.time()))
    lat1 = sample()
    # The steady window: past the latency phase's backlog and the ramp-up.
    time.sleep(max(0.0, latency_end + min(3.0, args.seconds / 3) - time.time()))
    thr0 = sample()
    committed0 = sum(_committed(port) for port in ports)
    time.sleep(max(0.0, throughput_end - time.time()))
    thr1 = sample()
    committed1 = sum(_committed(port) for port in ports)
    if kill:
        time.sleep(max(0.0, kill_at - time.time()))
        killed.value = time.time()
        hubs[0][0].send_signal(signal.SIGKILL)
    latencies: list[float] = []
    back: list[float] = []
    ingress: list[float] = []
    for _ in workers:
        got_latencies, got_back, got_ingress = out.get(timeout=args.seconds * 4 + 120)
        latencies += got_latencies
        back += got_back
        ingress += got_ingress
    for process in workers:
        process.join(30)
    for process, _ in hubs:
        if process.poll() is None:
            process.terminate()
    for i, (process, _) in enumerate(hubs):
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            log = (work / f"hub{count}-{i}.log").read_text(errors="replace")
            print(
                f"hub {i} did not stop within 30 s; its log ends:\n{log[-3000:]}", file=sys.stderr
            )
            process.kill()
            process.wait()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    victims = sum(1 for _, _, h in devices if h == 0) if kill else 0
    return {
        "hubs": count,
        "latency_samples": len(latencies),
        "p50_ms": pct(0.50) if latencies else float("nan"),
        "p99_ms": pct(0.99) if latencies else float("nan"),
        "device_to_hub_p50_ms": statistics.median(ingress) * 1000 if ingress else float("nan"),
        "stored_per_s": (committed1 - committed0) / (thr1[0] - thr0[0]),
        "redis_cpu_latency_pct": 100 * (lat1[1] - lat0[1]) / (lat1[0] - lat0[0]),
        "redis_cpu_throughput_pct": 100 * (thr1[1] - thr0[1]) / (thr1[0] - thr0[0]),
        "hubs_cpu_latency_pct": 100 * (lat1[2] - lat0[2]) / (lat1[0] - lat0[0]),
        "hubs_cpu_throughput_pct": 100 * (thr1[2] - thr0[2]) / (thr1[0] - thr0[0]),
        "killed_devices": victims,
        "back_after_kill_s": sorted(t - killed.value for t in back) if kill else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--rate", type=float, default=2000.0, help="readings/s, all devices")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--window", type=int, default=40, help="unacked readings per device")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--sizes", default="1,2,3")
    parser.add_argument("--no-kill", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ems-bench-cluster-"))
    name = f"ems_bench_cluster_{secrets.token_hex(3)}"
    _admin(f'CREATE DATABASE "{name}"')
    database = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    redis, redis_port = _start_redis(work)
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            load = os.getloadavg()[0]
            row = run_size(size, args, work, database, redis, f"redis://127.0.0.1:{redis_port}/0")
            back = row.pop("back_after_kill_s")
            row["load_avg_before"] = load
            if back:
                row["kill_to_acked_again_s"] = {
                    "devices": f"{len(back)}/{row['killed_devices']}",
                    "median": statistics.median(back),
                    "max": max(back),
                }
            print(json.dumps(row, default=lambda v: round(v, 3)), flush=True)
    finally:
        redis.kill()
        redis.wait()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
