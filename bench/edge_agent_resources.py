"""Edge agent memory and CPU while polling the four simulated devices at one reading per second.

Targets (docs/benchmarks.md, "Targets"): RSS <= 60 MB; CPU <= 2 % of one core here
(a Pi is 5-10x slower).

Starts ``ems hub serve`` (embedded SQLite), ``ems sim`` and ``ems edge run`` as
separate processes, exactly as deployed, lets the agent warm up, then samples
the agent's RSS every second and its CPU time over the measuring window.

    .venv/bin/python bench/edge_agent_resources.py                  # 120 s window
    .venv/bin/python bench/edge_agent_resources.py --seconds 10     # a quick check
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psutil

# bench/ is on the path when run as a script
from hub_process import EMS, add_token, free_port

from edge.demo import simulated_site_config

REPO = Path(__file__).resolve().parents[1]


def wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if callable(check) and check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start")


def accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-res-") as work:
        root = Path(work)
        env = {**os.environ, "EMS_DATA_DIR": str(root / "hub"), "PYTHONPATH": str(REPO)}
        env.pop("EMS_DATABASE_URL", None)
        token = add_token(env, "bench_agent")
        hub_port, sim_port = free_port(), free_port()
        (root / "edge.toml").write_text(
            simulated_site_config(
                device_id="bench_agent",
                hub_url=f"ws://127.0.0.1:{hub_port}",
                modbus_port=sim_port,
                buffer_path=root / "buffer.db",
            )
        )
        log = (root / "all.log").open("wb")
        children = [
            subprocess.Popen(
                [*EMS, "hub", "serve", "--port", str(hub_port)], env=env, stdout=log, stderr=log
            ),
            subprocess.Popen(
                [*EMS, "sim", "--tcp", f"127.0.0.1:{sim_port}"], env=env, stdout=log, stderr=log
            ),
        ]
        try:
            wait_until(
                lambda: httpx.get(f"http://127.0.0.1:{hub_port}/healthz").status_code == 200,
                "the hub",
            )
            wait_until(lambda: accepts(sim_port), "the simulator")
            agent = subprocess.Popen(
                [*EMS, "edge", "run", "--config", str(root / "edge.toml")],
                env={**env, "EMS_TOKEN": token},
                stdout=log,
                stderr=log,
            )
            children.append(agent)
            process = psutil.Process(agent.pid)
            time.sleep(args.warmup)
            before = process.cpu_times()
            began = time.monotonic()
            rss: list[int] = []
            while time.monotonic() - began < args.seconds:
                rss.append(process.memory_info().rss)
                time.sleep(1.0)
            after = process.cpu_times()
            elapsed = time.monotonic() - began
            cpu = (after.user + after.system - before.user - before.system) / elapsed
            stored = httpx.get(
                f"http://127.0.0.1:{hub_port}/api/devices/bench_agent/readings",
                params={"limit": "10000"},
            ).json()["readings"]
        finally:
            for child in reversed(children):
                child.send_signal(signal.SIGTERM)
            for child in children:
                child.wait(timeout=60)
            log.close()
    print(f"window: {elapsed:.0f} s after {args.warmup:.0f} s warm-up; 4 devices, 1 reading/s")
    print(f"agent RSS: max {max(rss) / 2**20:.1f} MB, last {rss[-1] / 2**20:.1f} MB (target <= 60)")
    print(f"agent CPU: {cpu * 100:.2f} % of one core (target <= 2 %)")
    print(f"readings stored by the hub meanwhile: {len(stored)}")
    print(f"agent exit code on SIGTERM: {agent.returncode}")


if __name__ == "__main__":
    main()
