"""Edge backlog drain: N buffered readings to the real hub on loopback, until all are acked.

Target (docs/benchmarks.md, "Targets"): 86,400 readings (a day at 1 Hz) in <= 15 s.

The outbox is filled first (full readings of the simulated site, ~1 KB each),
then the uplink is started against ``ems hub serve`` (embedded SQLite, its own
process) and timed until the outbox is empty, i.e. every reading was committed
by the hub, acked and deleted on the edge. Prints the figures.

    .venv/bin/python bench/edge_drain.py                 # 86,400 readings
    .venv/bin/python bench/edge_drain.py --count 5000    # a quick check
    .venv/bin/python bench/edge_drain.py --bare-door     # the edge's own cost: a door
                                                         # that acks at once, stores nothing
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

# bench/ is on the path when run as a script
from hub_process import add_token, free_port, start_hub, stop

from edge.compose import compose
from edge.config import Role
from edge.outbox import NewReading, Outbox, ts_us_of
from edge.uplink import Uplink
from simulation.default_site import Unit, device_sections
from simulation.plant import Plant

REPO = Path(__file__).resolve().parents[1]
ROLES = {Unit.INVERTER: Role.INVERTER, Unit.GRID_METER: Role.GRID, Unit.CHARGER: Role.SOLAR}
ROLES[Unit.BMS] = Role.BATTERY


def bodies(count: int, start: datetime, *, extras: bool = True) -> list[str]:
    """Readings of the simulated plant, one per simulated second (64 distinct, cycled).

    ``extras=False`` leaves out the ``extra`` section (the BMS's cells and the
    like): the four protocol sections only.
    """
    plant = Plant("sunny", seed=1, start=start)
    distinct = []
    for _ in range(64):
        sections = plant.step(1.0).sections()
        values = {ROLES[u]: device_sections(u, sections) for u in Unit}
        if not extras:
            values = {
                role: {k: v for k, v in s.items() if k != "extra"} for role, s in values.items()
            }
        distinct.append(compose(values).body())
    return [distinct[i % 64] for i in range(count)]


async def fill(outbox: Outbox, count: int, start: datetime, *, extras: bool = True) -> float:
    began = time.perf_counter()
    texts = bodies(count, start, extras=extras)
    for first in range(0, count, 5000):
        batch = [
            NewReading(mono=float(n), body=texts[n], ts_us=ts_us_of(start + timedelta(seconds=n)))
            for n in range(first, min(count, first + 5000))
        ]
        await outbox.append(batch, boot="bench")
    return time.perf_counter() - began


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Drain:
    took: float  # wall time until every reading was acked and deleted
    edge_cpu: float  # CPU seconds of this process (the uplink, the outbox's thread)
    hub_cpu: float  # CPU seconds of the hub's process


async def drain(outbox: Outbox, url: str, token: str, count: int, hub_pid: int) -> Drain:
    uplink = Uplink(outbox, url=url, token=token)
    began, edge0, hub0 = time.perf_counter(), time.process_time(), cpu_s(hub_pid)
    task = asyncio.create_task(uplink.run(), name="bench.uplink")
    try:
        # Watched in memory: polling the outbox's depth (count(*) over a few hundred
        # MB, every 50 ms) took the uplink's own database thread and lock.
        while uplink.status().acked < count:  # noqa: ASYNC110 - the uplink task's state
            await asyncio.sleep(0.01)
        await uplink.flush_acked()  # the last acks deleted: the outbox is empty
        result = Drain(
            time.perf_counter() - began, time.process_time() - edge0, cpu_s(hub_pid) - hub0
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    left = (await outbox.status()).depth
    if left:
        raise SystemExit(f"{left} readings left in the outbox after the drain")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=86_400)
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_DSN",
        help="store in a fresh PostgreSQL database made through this DSN (default: SQLite)",
    )
    parser.add_argument(
        "--no-extras", action="store_true", help="readings without the extra section (~1 KB)"
    )
    parser.add_argument(
        "--bare-door",
        action="store_true",
        help="drain to bench/edge_bare_door.py (acks at once, stores nothing): the edge's cost",
    )
    args = parser.parse_args()
    if args.bare_door:
        _run_bare(args.count, extras=not args.no_extras)
        return
    database = _create_database(args.postgres) if args.postgres else None
    try:
        _run(args.count, database, extras=not args.no_extras)
    finally:
        if database is not None:
            _admin(
                args.postgres,
                f'DROP DATABASE IF EXISTS "{database.rsplit("/", 1)[1]}" WITH (FORCE)',
            )


def _admin(dsn: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _create_database(admin_dsn: str) -> str:
    name = f"ems_bench_{os.getpid()}"
    _admin(admin_dsn, f'CREATE DATABASE "{name}"')
    return f"{admin_dsn.rsplit('/', 1)[0]}/{name}"


def _run_bare(count: int, *, extras: bool) -> None:
    port = free_port()
    door = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "edge_bare_door.py"), str(port)],
        stdout=subprocess.PIPE,
    )
    try:
        assert door.stdout is not None
        door.stdout.readline()  # "ready"
        with tempfile.TemporaryDirectory(prefix="edge-drain-") as work:
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=count + 60)

            async def run() -> Drain:
                async with Outbox.open(Path(work) / "buffer.db", max_bytes=1 << 31) as outbox:
                    await fill(outbox, count, start, extras=extras)
                    url = f"ws://127.0.0.1:{port}/ws/device/bench_drain"
                    return await drain(outbox, url, "unused", count, door.pid)

            drained = asyncio.run(run())
    finally:
        door.kill()
        door.wait(timeout=30)
    print(f"readings: {count}, to a bare door (acks at once, stores nothing)")
    print(f"drain: {drained.took:.2f} s ({count / drained.took:,.0f} readings/s)")
    print(
        f"CPU during the drain: edge {drained.edge_cpu:.2f} s"
        f" ({100 * drained.edge_cpu / drained.took:.0f} % of a core),"
        f" door {drained.hub_cpu:.2f} s"
    )


def _run(count: int, database: str | None, *, extras: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="edge-drain-") as work:
        root = Path(work)
        env = {**os.environ, "EMS_DATA_DIR": str(root / "hub"), "PYTHONPATH": str(REPO)}
        env.pop("EMS_DATABASE_URL", None)
        if database is not None:
            env["EMS_DATABASE_URL"] = database
        token = add_token(env, "bench_drain")
        hub, port = start_hub(root / "hub.log", env)
        try:
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=count + 60)

            async def run() -> tuple[float, Drain, int]:
                async with Outbox.open(root / "buffer.db", max_bytes=1 << 31) as outbox:
                    filled = await fill(outbox, count, start, extras=extras)
                    size = (await outbox.status()).used_bytes
                    url = f"ws://127.0.0.1:{port}/ws/device/bench_drain"
                    drained = await drain(outbox, url, token, count, hub.pid)
                    return filled, drained, size

            filled, drained, size = asyncio.run(run())
            took = drained.took
            stored = httpx.get(
                f"http://127.0.0.1:{port}/api/devices/bench_drain/readings",
                params={
                    "start": start.isoformat(),
                    "end": datetime.now(UTC).isoformat(),
                    "limit": "1",
                },
            ).json()["readings"]
        finally:
            stop(hub, 60)
    print(f"hub storage: {'PostgreSQL' if database else 'SQLite (embedded)'}")
    print(f"readings: {count} ({size / count:.0f} bytes each in the outbox)")
    print(f"outbox fill: {filled:.2f} s ({count / filled:,.0f} readings/s)")
    print(f"drain to an acking hub: {took:.2f} s ({count / took:,.0f} readings/s)")
    print(
        f"CPU during the drain: edge {drained.edge_cpu:.2f} s"
        f" ({100 * drained.edge_cpu / took:.0f} % of a core),"
        f" hub {drained.hub_cpu:.2f} s ({100 * drained.hub_cpu / took:.0f} % of a core)"
    )
    print(
        f"target: <= 15 s for 86,400 -> {'met' if took <= 15 * count / 86_400 else 'MISSED'}"
        " (scaled to this count)"
    )
    print(f"first stored reading seq: {stored[0]['seq'] if stored else 'none'}")


if __name__ == "__main__":
    main()
