"""Edge agent memory over a long run with repeated hub restarts: is it flat?

Starts ``ems sim`` and ``ems hub serve`` (embedded SQLite) as processes, and the
agent as this script's own child (``--agent-child``: ``ems edge run`` with a
thread beside it that records, every few seconds, the agent's RSS and anonymous
memory from ``/proc/self/smaps_rollup``, Python's own heap as ``tracemalloc``
sees it, glibc's ``mallinfo2`` (in use vs free in the arenas), threads and
descriptors). The hub is stopped (SIGTERM) every ``--restart-every`` seconds and
started again after ``--down`` seconds on the same port. At the end it prints
the figures over time and the least-squares slope of each in MiB/h, over the
samples after the warm-up (the first hub restart and its catch-up included).

    .venv/bin/python bench/edge_soak.py --minutes 30 --restart-every 60
    .venv/bin/python bench/edge_soak.py --minutes 5 --restart-every 5 --down 1   # amplified

Environment for the agent child, to compare causes: ``MALLOC_ARENA_MAX`` is
passed through as set.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

# bench/ is on the path when run as a script
from hub_process import EMS, ROOT, add_token, free_port

MIB = 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _smaps_rollup() -> dict[str, int]:
    figures: dict[str, int] = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[-1] == "kB":
            figures[key.strip()] = int(parts[0]) * 1024
    return figures


def _record(stats: Path, every_s: float) -> None:
    libc = ctypes.CDLL("libc.so.6")
    mallinfo2 = getattr(libc, "mallinfo2", None)
    if mallinfo2 is not None:
        mallinfo2.restype = _MallInfo2
    # The library the sqlite3 module uses (one copy per process): its own allocator count.
    import _sqlite3

    sqlite = ctypes.CDLL(_sqlite3.__file__)
    sqlite_used = getattr(sqlite, "sqlite3_memory_used", None)
    if sqlite_used is not None:
        sqlite_used.restype = ctypes.c_int64
    began = time.monotonic()
    with stats.open("a", encoding="utf-8") as out:
        while True:
            rollup = _smaps_rollup()
            traced, _peak = tracemalloc.get_traced_memory()
            row: dict[str, Any] = {
                "t": round(time.monotonic() - began, 1),
                "rss": rollup.get("Rss", 0),
                "anon": rollup.get("Anonymous", 0),
                "traced": traced,
                "threads": threading.active_count(),
                "native_threads": len(os.listdir("/proc/self/task")),
                "fds": len(os.listdir("/proc/self/fd")),
            }
            if sqlite_used is not None:
                row["sqlite"] = sqlite_used()
            if mallinfo2 is not None:
                info = mallinfo2()
                row["malloc_in_use"] = info.uordblks + info.hblkhd
                row["malloc_free"] = info.fordblks
                row["malloc_arena"] = info.arena + info.hblkhd
            out.write(json.dumps(row) + "\n")
            out.flush()
            time.sleep(every_s)


def agent_child(config: str, stats: str, every_s: float) -> int:
    """``ems edge run --config CONFIG`` with the recorder thread beside it."""
    sys.path.insert(0, str(ROOT))
    tracemalloc.start(1)
    recorder = threading.Thread(
        target=_record, args=(Path(stats), every_s), name="soak.recorder", daemon=True
    )
    recorder.start()
    from edge.cli import run

    return run(argparse.Namespace(config=config, log_format="text"))


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _wait(check: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


def _slope_mib_h(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, bytes) in MiB per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600 / MIB


def report(rows: list[dict[str, Any]], warmup_s: float, restarts: int) -> None:
    names = ("rss", "anon", "traced", "sqlite", "malloc_in_use", "malloc_free")
    keys = [k for k in names if k in rows[0]]
    print("minute  " + "  ".join(f"{k:>14}" for k in keys) + "  threads  fds   (MiB)")
    last_minute = -1
    for row in rows:
        minute = int(row["t"] // 60)
        if minute != last_minute or row is rows[-1]:
            last_minute = minute
            figures = "  ".join(f"{row[k] / MIB:14.2f}" for k in keys)
            print(f"{row['t'] / 60:6.1f}  {figures}  {row['native_threads']:7d}  {row['fds']:3d}")
    measured = [row for row in rows if row["t"] >= warmup_s]
    span_h = (measured[-1]["t"] - measured[0]["t"]) / 3600 if measured else 0.0
    print(f"\nhub restarts: {restarts}; slopes over {span_h * 60:.0f} min after {warmup_s:.0f} s:")
    for key in keys:
        slope = _slope_mib_h([(row["t"], row[key]) for row in measured])
        change = (measured[-1][key] - measured[0][key]) / MIB if measured else 0.0
        print(f"  {key:>14}: {slope:+7.2f} MiB/h  (first to last {change:+.2f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--restart-every", type=float, default=60.0, help="seconds between")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the hub stays down")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds left out of slopes")
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument(
        "--agent-child", nargs=2, metavar=("CONFIG", "STATS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.agent_child:
        raise SystemExit(agent_child(*args.agent_child, args.sample_every))

    sys.path.insert(0, str(ROOT))
    from edge.demo import simulated_site_config

    with tempfile.TemporaryDirectory(prefix="edge-soak-") as work:
        root = Path(work)
        env = {**os.environ, "EMS_DATA_DIR": str(root / "hub"), "PYTHONPATH": str(ROOT)}
        env.pop("EMS_DATABASE_URL", None)
        token = add_token(env, "soak_agent")
        hub_port, sim_port = free_port(), free_port()
        (root / "edge.toml").write_text(
            simulated_site_config(
                device_id="soak_agent",
                hub_url=f"ws://127.0.0.1:{hub_port}",
                modbus_port=sim_port,
                buffer_path=root / "buffer.db",
            )
        )
        stats = root / "stats.jsonl"
        log = (root / "all.log").open("ab")

        def start_hub() -> subprocess.Popen[bytes]:
            hub = subprocess.Popen(
                [*EMS, "hub", "serve", "--port", str(hub_port)],
                env=env,
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
            _wait(lambda: _accepts(hub_port), "the hub")
            return hub

        sim = subprocess.Popen(
            [*EMS, "sim", "--tcp", f"127.0.0.1:{sim_port}"], env=env, stdout=log, stderr=log
        )
        hub = start_hub()
        agent: subprocess.Popen[bytes] | None = None
        restarts = 0
        try:
            _wait(lambda: _accepts(sim_port), "the simulator")
            agent = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--sample-every",
                    str(args.sample_every),
                    "--agent-child",
                    str(root / "edge.toml"),
                    str(stats),
                ],
                env={**env, "EMS_TOKEN": token},
                stdout=log,
                stderr=log,
            )
            began = time.monotonic()
            end = began + args.minutes * 60
            next_restart = began + args.restart_every
            while time.monotonic() < end:
                if agent.poll() is not None:
                    raise SystemExit(f"the agent exited with {agent.returncode}")
                if time.monotonic() >= next_restart:
                    hub.send_signal(signal.SIGTERM)
                    hub.wait(30)
                    time.sleep(args.down)
                    hub = start_hub()
                    restarts += 1
                    next_restart = time.monotonic() + args.restart_every
                time.sleep(0.2)
        finally:
            for child in (agent, hub, sim):
                if child is not None and child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in (agent, hub, sim):
                if child is not None:
                    child.wait(60)
            log.close()
        rows = [json.loads(line) for line in stats.read_text().splitlines() if line]
    print(
        f"agent soak: {args.minutes:.0f} min, hub restarted every {args.restart_every:.0f} s "
        f"(down {args.down:.0f} s); MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')}"
    )
    report(rows, args.warmup, restarts)


if __name__ == "__main__":
    main()
