"""Held connections: the hub's memory and CPU with 10,000 WebSockets open.

Target (docs/benchmarks.md, "Targets"): 10,000 sockets in <= 1 GiB hub RSS. Starts the
hub (``ems hub serve``, a subprocess) on a fresh PostgreSQL database (or SQLite
with ``--sqlite``), gives every simulated device a token, then from several
client processes (one process would need all the file descriptors and would
spend its CPU on 10,000 handshakes alone):

1. open: ``--devices`` device sockets with valid tokens and ``--dashboards``
   dashboard sockets (each watching one of the devices), at most ``--in-flight``
   handshakes at a time per client process (0: all at once, like every edge
   reconnecting after a hub restart); timed;
2. quiet hold (``--quiet`` s): the sockets only stay open (keepalive pings: the
   hub's every 20 s, the devices' every ``--device-ping`` s, as the edge does);
   the hub's CPU over this window is its idle cost;
3. live hold (``--live`` s): every device sends a reading every ``--interval`` s,
   acked after commit; dashboards count the readings they see;
4. checks, with every socket still open: the hub's ``ems_connections`` gauges and
   the clients' own counts of open sockets agree; a fresh device's reading
   reaches a fresh dashboard and is acked; then SIGTERM, and the hub must exit 0
   with every client socket closed with 1001 (docs/protocol.md, "Close codes").

The hub's RSS (and USS, its private memory) is taken before any connection, at
the end of the quiet hold, and at the end of the live hold (and its peak is
sampled every 0.5 s throughout). The kernel's accept-queue overflow counter
(``ListenOverflows``, machine-wide) shows whether uvicorn's listen backlog
(2048) turned handshakes away while they were opened. File-descriptor limits are
raised (``RLIMIT_NOFILE``) in this process before the hub and the clients are
spawned, so both inherit them.

    .venv/bin/python bench/hub_connections.py         # 9,000 devices, 1,000 dashboards
    .venv/bin/python bench/hub_connections.py --devices 200 --dashboards 50 --quiet 3 --live 3
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import multiprocessing as mp
import os
import resource
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

# bench/ is on the path when run as a script
from hub_process import start_hub, stop, store_tokens
from hub_throughput import ADMIN_DSN, admin, hub_metrics, reading

MIB = 2**20
TARGET_SOCKETS = 10_000
TARGET_RSS = 2**30  # the target: 10,000 sockets in <= 1 GiB hub RSS
GOING_AWAY = 1001  # what the hub closes every socket with on SIGTERM


class Phase(enum.IntEnum):
    """What the clients do; the parent moves them forward through a shared value."""

    START = 0
    OPEN = 1
    QUIET = 2
    LIVE = 3
    STILL = 4  # devices stop sending; sockets stay open
    EXIT = 5


class Stat(enum.IntEnum):
    """One client process's counters, in a shared array (one row per process)."""

    READY = 0
    DEVICES_OPEN = 1  # open right now
    DASHBOARDS_OPEN = 2
    OPENED = 3  # handshakes that succeeded
    FAILED = 4  # handshakes that failed
    OPEN_DONE_MS = 5  # epoch ms at which this process's last handshake ended
    SENT = 6  # readings sent by devices
    ACK_FRAMES = 7  # ack frames received by devices
    READINGS_SEEN = 8  # reading frames received by dashboards
    CLOSED_1001 = 9  # sockets the hub closed with 1001
    CLOSED_OTHER = 10  # sockets that ended any other way
    CPU_MS = 11


@dataclass(frozen=True)
class Plan:
    port: int
    row: int  # this process's row in the shared stats
    devices: list[tuple[str, str]]  # (device_id, token)
    watched: list[str]  # one dashboard per entry
    interval: float
    in_flight: int
    device_ping: float | None
    open_timeout: float
    fd_limit: int


def raise_fd_limit(need: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to at least ``need`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} < {need} file descriptors needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        soft = need
    return soft


def listen_overflows() -> int:
    """The kernel's count of connections a full accept queue turned away (all sockets)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return -1
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(row.get("ListenOverflows", -1))
    return -1


def ephemeral_ports() -> int:
    """How many source ports one client address has (one per connection to one port)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return 28_232  # Linux's default range, 32768-60999
    return int(high) - int(low) + 1


async def run_client(plan: Plan, stats: Any, phase: Any) -> None:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    base = plan.row * len(Stat)
    gates = {p: asyncio.Event() for p in Phase}
    slots = asyncio.Semaphore(plan.in_flight or len(plan.devices) + len(plan.watched) + 1)
    pending = len(plan.devices) + len(plan.watched)
    devices: list[ClientConnection] = []
    errors: list[str] = []

    def bump(stat: Stat, by: int = 1) -> None:
        stats[base + stat] += by

    async def follow_phase() -> None:
        while not gates[Phase.EXIT].is_set():
            for p in Phase:
                if p <= phase.value:
                    gates[p].set()
            await asyncio.sleep(0.1)

    async def open_socket(
        path: str, headers: dict[str, str], ping: float | None
    ) -> ClientConnection | None:
        nonlocal pending
        try:
            async with slots:
                return await connect(
                    f"ws://127.0.0.1:{plan.port}{path}",
                    additional_headers=headers,
                    compression=None,
                    open_timeout=plan.open_timeout,
                    ping_interval=ping,
                    ping_timeout=ping,
                )
        except (OSError, TimeoutError, InvalidHandshake) as err:
            bump(Stat.FAILED)
            if len(errors) < 3:
                errors.append(f"{path}: {err!r}")
            return None
        finally:
            pending -= 1
            if pending == 0:
                stats[base + Stat.OPEN_DONE_MS] = int(time.time() * 1000)

    async def hold(client: ClientConnection, is_open: Stat, count: Callable[[str], None]) -> None:
        bump(Stat.OPENED)
        bump(is_open)
        try:
            async for message in client:
                count(message if isinstance(message, str) else message.decode())
        except ConnectionClosed:
            pass
        finally:
            bump(is_open, -1)
            bump(Stat.CLOSED_1001 if client.close_code == GOING_AWAY else Stat.CLOSED_OTHER)

    def count_ack(_: str) -> None:
        bump(Stat.ACK_FRAMES)

    def count_reading(message: str) -> None:
        if message.startswith('{"type":"reading"'):
            bump(Stat.READINGS_SEEN)

    async def device(device_id: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        client = await open_socket(f"/ws/device/{device_id}", headers, plan.device_ping)
        if client is not None:
            devices.append(client)
            await hold(client, Stat.DEVICES_OPEN, count_ack)

    async def dashboard(device_id: str) -> None:
        client = await open_socket(f"/ws/dashboard/{device_id}", {}, None)
        if client is not None:
            await hold(client, Stat.DASHBOARDS_OPEN, count_reading)

    async def send_readings() -> None:
        """Every device one reading per ``interval``, spread evenly over the interval."""
        await gates[Phase.LIVE].wait()
        seq = cursor = 0
        start = time.monotonic()
        while devices and not gates[Phase.STILL].is_set():
            due = int((time.monotonic() - start) / plan.interval * len(devices)) + 1
            while cursor < due:
                client = devices[cursor % len(devices)]
                cursor += 1
                try:
                    await client.send(reading(seq))
                except ConnectionClosed:
                    continue
                seq += 1  # one counter for all: still increasing per device
                bump(Stat.SENT)
            await asyncio.sleep(0.05)

    raise_fd_limit(plan.fd_limit)
    tasks = [asyncio.create_task(follow_phase())]
    bump(Stat.READY)
    await gates[Phase.OPEN].wait()
    tasks += [asyncio.create_task(dashboard(device_id)) for device_id in plan.watched]
    tasks += [asyncio.create_task(device(*pair)) for pair in plan.devices]
    tasks.append(asyncio.create_task(send_readings()))
    await gates[Phase.EXIT].wait()
    for error in errors:
        print(f"client {plan.row}: handshake failed: {error}", file=sys.stderr)
    stats[base + Stat.CPU_MS] = int(time.process_time() * 1000)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def client_main(plan: Plan, stats: Any, phase: Any) -> None:
    import uvloop

    uvloop.run(run_client(plan, stats, phase))


async def probe(port: int, device_id: str, token: str) -> dict[str, float]:
    """A fresh dashboard and device: seconds until the reading is seen and acked."""
    from websockets.asyncio.client import connect

    base = f"ws://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        asyncio.timeout(30),
        connect(f"{base}/ws/dashboard/{device_id}", compression=None) as dashboard,
        connect(f"{base}/ws/device/{device_id}", additional_headers=headers) as device,
    ):
        sent_at = time.perf_counter()
        await device.send(reading(1))
        seen = acked = 0.0
        while not seen:
            frame = json.loads(await dashboard.recv())
            if frame["type"] == "reading" and frame["seq"] == 1:
                seen = time.perf_counter() - sent_at
        while not acked:
            frame = json.loads(await device.recv())
            if frame["type"] == "ack" and [1, 1] in frame["ranges"]:
                acked = time.perf_counter() - sent_at
    return {"seen_s": seen, "acked_s": acked}


@dataclass
class Memory:
    rss: int
    uss: int | None


def memory_of(process: psutil.Process) -> Memory:
    try:
        full = process.memory_full_info()
    except psutil.AccessDenied:
        return Memory(process.memory_info().rss, None)
    return Memory(full.rss, full.uss)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class Clients:
    """The client processes and their shared counters."""

    def __init__(self, plans: list[Plan], ctx: Any, stats: Any, phase: Any) -> None:
        self.stats = stats
        self.phase = phase
        self.processes = [
            ctx.Process(target=client_main, args=(plan, stats, phase), daemon=True)
            for plan in plans
        ]
        for process in self.processes:
            process.start()

    def total(self, stat: Stat) -> int:
        return sum(self.stats[row * len(Stat) + stat] for row in range(len(self.processes)))

    def column(self, stat: Stat) -> list[int]:
        return [self.stats[row * len(Stat) + stat] for row in range(len(self.processes))]

    def go(self, phase: Phase) -> None:
        self.phase.value = phase

    def wait_until(self, done: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            if any(not process.is_alive() for process in self.processes):
                raise SystemExit(f"a client process died while waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.go(Phase.EXIT)
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()


def sample_during(seconds: float, hub: psutil.Process) -> tuple[float, int]:
    """Hold for ``seconds``: the hub's CPU share over them and its peak RSS."""
    cpu0, t0 = cpu_seconds(hub), time.monotonic()
    peak = 0
    while (left := seconds - (time.monotonic() - t0)) > 0:
        peak = max(peak, hub.memory_info().rss)
        time.sleep(min(0.5, left))
    return (cpu_seconds(hub) - cpu0) / (time.monotonic() - t0), peak


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


def run(args: argparse.Namespace, database: str | None, data_dir: Path) -> dict[str, Any]:
    sockets = args.devices + args.dashboards
    began = time.monotonic()
    ids = [f"conn_{i:05d}" for i in range(args.devices)]
    tokens = asyncio.run(store_tokens(database, data_dir, [*ids, "conn_probe"]))
    probe_id, probe_token = tokens.pop()  # a device no client process uses
    out: dict[str, Any] = {"tokens_s": time.monotonic() - began}
    out["client_fd_limit"] = raise_fd_limit(sockets + 1024)
    step = max(1, args.devices // max(1, args.dashboards))
    # Each dashboard watches a device (dashboards only: devices that never connect).
    watched = [ids[i * step % len(ids)] if ids else f"idle_{i:05d}" for i in range(args.dashboards)]

    log = args.hub_log or data_dir / "hub.log"
    hub, port = start_hub(log, {**os.environ, "EMS_DATA_DIR": str(data_dir)}, database)
    clients: Clients | None = None
    try:
        server = psutil.Process(hub.pid)
        out["hub_fd_limit"] = server.rlimit(psutil.RLIMIT_NOFILE)[0]
        time.sleep(args.settle)
        out["base"] = memory_of(server)
        out["idle_cpu_no_sockets"], _ = sample_during(args.settle, server)

        ctx = mp.get_context("spawn")
        stats = ctx.Array("q", args.clients * len(Stat), lock=False)
        phase = ctx.Value("i", Phase.START, lock=False)
        plans = [
            Plan(
                port=port,
                row=row,
                devices=devices,
                watched=dashboards,
                interval=args.interval,
                in_flight=args.in_flight,
                device_ping=args.device_ping or None,
                open_timeout=args.open_timeout,
                fd_limit=out["client_fd_limit"],
            )
            for row, (devices, dashboards) in enumerate(
                zip(split(tokens, args.clients), split(watched, args.clients), strict=True)
            )
        ]
        clients = pool = Clients(plans, ctx, stats, phase)
        pool.wait_until(lambda: pool.total(Stat.READY) == args.clients, 60, "clients")

        # 1. open
        overflows = listen_overflows()
        go = time.time()
        pool.go(Phase.OPEN)
        pool.wait_until(
            lambda: pool.total(Stat.OPENED) + pool.total(Stat.FAILED) == sockets,
            args.open_timeout + 120,
            "the handshakes",
        )
        out["open_s"] = max(pool.column(Stat.OPEN_DONE_MS)) / 1000 - go
        out["failed"] = pool.total(Stat.FAILED)
        out["overflows"] = listen_overflows() - overflows
        time.sleep(args.settle)  # let the last registrations and the first pings pass

        # 2. quiet hold
        pool.go(Phase.QUIET)
        out["quiet_cpu"], out["quiet_peak_rss"] = sample_during(args.quiet, server)
        out["held"] = memory_of(server)
        out["quiet_gauges"] = gauges(hub_metrics(port))
        out["quiet_clients"] = (
            pool.total(Stat.DEVICES_OPEN),
            pool.total(Stat.DASHBOARDS_OPEN),
        )

        # 3. live hold
        before = hub_metrics(port)
        pool.go(Phase.LIVE)
        out["live_cpu"], out["live_peak_rss"] = sample_during(args.live, server)
        pool.go(Phase.STILL)
        time.sleep(args.settle)  # the last commits and acks
        after = hub_metrics(port)
        out["live"] = memory_of(server)
        out["stored"] = committed(after) - committed(before)
        out["sent"] = pool.total(Stat.SENT)
        out["ack_frames"] = pool.total(Stat.ACK_FRAMES)
        out["readings_seen"] = pool.total(Stat.READINGS_SEEN)
        out["dropped"] = {k: v for k, v in after.items() if k.startswith("ems_dropped_total")}

        # 4. checks with every socket open, then SIGTERM
        out["gauges"] = gauges(after)
        out["clients_open"] = (
            pool.total(Stat.DEVICES_OPEN),
            pool.total(Stat.DASHBOARDS_OPEN),
        )
        out["probe"] = asyncio.run(probe(port, probe_id, probe_token))
        out["before_term"] = memory_of(server)
        term_at = time.monotonic()
        hub.send_signal(signal.SIGTERM)
        out["exit_code"] = hub.wait(60)
        out["exit_s"] = time.monotonic() - term_at
        pool.wait_until(
            lambda: pool.total(Stat.DEVICES_OPEN) + pool.total(Stat.DASHBOARDS_OPEN) == 0,
            30,
            "the clients to see their sockets closed",
        )
        out["closed_1001"] = pool.total(Stat.CLOSED_1001)
        out["closed_other"] = pool.total(Stat.CLOSED_OTHER)
        pool.stop()
        out["client_cpu_s"] = sum(pool.column(Stat.CPU_MS)) / 1000
        clients = None
    finally:
        if clients is not None:
            clients.stop()
        stop(hub)
    out["log_tail"] = log.read_text(errors="replace").splitlines()[-5:]
    return out


def gauges(samples: dict[str, float]) -> tuple[int, int]:
    return (
        int(samples.get('ems_connections{door="device"}', -1)),
        int(samples.get('ems_connections{door="dashboard"}', -1)),
    )


def committed(samples: dict[str, float]) -> float:
    return samples.get("ems_writer_rows_committed_total", 0.0)


def with_database(
    args: argparse.Namespace, work: Callable[[str | None], dict[str, Any]]
) -> dict[str, Any]:
    """Run ``work`` with a fresh PostgreSQL database (dropped afterwards), or none (SQLite)."""
    if args.sqlite:
        return work(None)
    name = f"ems_bench_{secrets.token_hex(4)}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        return work(f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}")
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def report(args: argparse.Namespace, out: dict[str, Any], load_before: str) -> bool:
    sockets = args.devices + args.dashboards

    def mib(value: int | None) -> str:
        return "n/a" if value is None else f"{value / MIB:.0f} MiB"

    def per_socket(now: int | None, then: int | None) -> str:
        if now is None or then is None:
            return "n/a"
        return f"{(now - then) / max(1, sockets) / 1024:.1f} KiB"

    base, held, live = out["base"], out["held"], out["live"]
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB")
    print(f"load average before: {load_before}; after: {loadavg()}")
    print(
        f"load: {args.devices} devices + {args.dashboards} dashboards = {sockets} sockets "
        f"from {args.clients} client processes ({args.in_flight or 'unlimited'} handshakes "
        f"in flight each); storage: {'SQLite' if args.sqlite else 'PostgreSQL'}"
    )
    print(
        f"fd limits: hub {out['hub_fd_limit']}, clients {out['client_fd_limit']}; "
        f"ephemeral ports: {ephemeral_ports()}; tokens stored in {out['tokens_s']:.1f} s"
    )
    print(
        f"open: {sockets - out['failed']} of {sockets} in {out['open_s']:.1f} s "
        f"({(sockets - out['failed']) / max(1e-9, out['open_s']):.0f} handshakes/s), "
        f"{out['failed']} failed; accept-queue overflows meanwhile (whole machine): "
        f"{out['overflows']}"
    )
    print(
        f"held (quiet, {args.quiet:.0f} s): hub gauges devices/dashboards {out['quiet_gauges']}, "
        f"clients count {out['quiet_clients']}; hub CPU {100 * out['quiet_cpu']:.1f} % of a core "
        f"(no sockets: {100 * out['idle_cpu_no_sockets']:.1f} %)"
    )
    print(
        f"live ({args.live:.0f} s, a reading per device every {args.interval:g} s): "
        f"{out['sent']} sent, {out['stored']:.0f} stored, {out['ack_frames']} ack frames, "
        f"{out['readings_seen']} readings seen by dashboards; hub CPU "
        f"{100 * out['live_cpu']:.0f} % of a core; dropped {out['dropped']}"
    )
    print(f"hub RSS baseline (no sockets): {mib(base.rss)}, USS {mib(base.uss)}")
    print(
        f"hub RSS all held (end of the quiet hold): {mib(held.rss)} "
        f"(+{per_socket(held.rss, base.rss)} per socket), "
        f"USS {mib(held.uss)} (+{per_socket(held.uss, base.uss)} per socket)"
    )
    print(
        f"hub RSS after the live hold: {mib(live.rss)} (+{per_socket(live.rss, base.rss)} per "
        f"socket; peak during it {mib(out['live_peak_rss'])}), USS {mib(live.uss)} "
        f"(+{per_socket(live.uss, base.uss)} per socket)"
    )
    print(
        f"still open before SIGTERM: hub gauges {out['gauges']}, clients count "
        f"{out['clients_open']}; probe: reading seen by a new dashboard after "
        f"{1000 * out['probe']['seen_s']:.0f} ms, "
        f"acked after {1000 * out['probe']['acked_s']:.0f} ms"
    )
    print(
        f"SIGTERM: exit code {out['exit_code']} after {out['exit_s']:.1f} s; client sockets "
        f"closed with 1001: {out['closed_1001']}, otherwise: {out['closed_other']}"
    )
    print(f"client processes used {out['client_cpu_s']:.1f} CPU-s in all")
    all_open = out["gauges"] == (args.devices, args.dashboards) == out["clients_open"]
    clean = bool(out["exit_code"] == 0 and out["closed_1001"] == sockets)
    peak = max(held.rss, live.rss, out["quiet_peak_rss"], out["live_peak_rss"])
    if sockets < TARGET_SOCKETS:
        verdict = f"not measured (fewer than {TARGET_SOCKETS} sockets)"
    elif all_open and peak <= TARGET_RSS:
        verdict = "MET"
    else:
        verdict = "NOT MET"
    print(
        f"target ({TARGET_SOCKETS} sockets in <= 1 GiB RSS): peak RSS {mib(peak)} with "
        f"{sockets} sockets, all open: {all_open}, clean stop: {clean} -> {verdict}"
    )
    if not clean or not all_open:
        print("hub log tail:\n  " + "\n  ".join(out["log_tail"]))
    return all_open and clean and verdict != "NOT MET"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description="hub memory and CPU with 10,000 sockets held")
    parser.add_argument("--devices", type=int, default=9000)
    parser.add_argument("--dashboards", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--in-flight", type=int, default=50, help="handshakes at a time per client (0: all)"
    )
    parser.add_argument("--interval", type=float, default=5.0, help="s between a device's readings")
    parser.add_argument(
        "--quiet", type=float, default=20.0, help="s of quiet hold (the hub pings every 20 s)"
    )
    parser.add_argument("--live", type=float, default=20.0, help="s of live hold")
    parser.add_argument("--settle", type=float, default=3.0, help="s of settling between steps")
    parser.add_argument(
        "--device-ping", type=float, default=10.0, help="devices' ping interval (0: none)"
    )
    parser.add_argument("--open-timeout", type=float, default=60.0)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--hub-log", type=Path, help="keep the hub's log in this file")
    args = parser.parse_args()

    sockets = args.devices + args.dashboards
    if sockets + 100 > ephemeral_ports():
        raise SystemExit(f"{sockets} sockets from 127.0.0.1 need more than the ephemeral ports")
    # The hub holds every socket plus its own files; each client its share. Raised
    # here, before anything is spawned: the hub and the clients inherit it.
    raise_fd_limit(sockets + 1024)
    load_before = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = with_database(args, lambda database: run(args, database, Path(tmp)))
    return 0 if report(args, out, load_before) else 1


if __name__ == "__main__":
    sys.exit(main())
