"""Edge agent memory and CPU at one reading per second with Home Assistant over MQTT on.

Targets (docs/benchmarks.md, "Targets"): RSS <= 60 MB; CPU <= 2 % of one core here.

As bench/edge_agent_resources.py (``ems hub serve``, ``ems sim`` and ``ems edge
run`` as separate processes, the four simulated devices), plus a private Debian
``mosquitto`` on a free loopback port and an ``[mqtt]`` section with discovery on:
every value of every device is published each second. A ``mosquitto_sub`` on
``#`` counts what reached the broker. With ``--baseline`` the same run is made
first without ``[mqtt]``, so the two are measured on the same machine minutes apart.

    .venv/bin/python bench/edge_mqtt_resources.py                       # 120 s window
    .venv/bin/python bench/edge_mqtt_resources.py --seconds 60 --baseline
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
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


@dataclass
class Result:
    rss_max: float
    rss_last: float
    cpu_pct: float
    elapsed: float
    stored: int
    messages: int
    exit_code: int | None


def measure(root: Path, *, mqtt: bool, seconds: float, warmup: float) -> Result:
    env = {**os.environ, "EMS_DATA_DIR": str(root / "hub"), "PYTHONPATH": str(REPO)}
    env.pop("EMS_DATABASE_URL", None)
    token = add_token(env, "bench_mqtt")
    hub_port, sim_port, broker_port = free_port(), free_port(), free_port()
    config = simulated_site_config(
        device_id="bench_mqtt",
        hub_url=f"ws://127.0.0.1:{hub_port}",
        modbus_port=sim_port,
        buffer_path=root / "buffer.db",
    )
    if mqtt:
        config += f'\n[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\nha_discovery = true\n'
    (root / "edge.toml").write_text(config)
    (root / "mosquitto.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
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
    counted = root / "messages.txt"
    try:
        if mqtt:
            broker = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            children.append(
                subprocess.Popen(
                    [broker, "-c", str(root / "mosquitto.conf")], stdout=log, stderr=log
                )
            )
            wait_until(lambda: accepts(broker_port), "mosquitto")
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
        time.sleep(warmup)
        if mqtt:
            with counted.open("wb") as out:
                children.append(
                    subprocess.Popen(
                        ["mosquitto_sub", "-p", str(broker_port), "-t", "ems/#", "-v"],
                        stdout=out,
                        stderr=log,
                    )
                )
        before = process.cpu_times()
        began = time.monotonic()
        rss: list[int] = []
        while time.monotonic() - began < seconds:
            rss.append(process.memory_info().rss)
            time.sleep(1.0)
        after = process.cpu_times()
        elapsed = time.monotonic() - began
        cpu = (after.user + after.system - before.user - before.system) / elapsed
        stored = httpx.get(
            f"http://127.0.0.1:{hub_port}/api/devices/bench_mqtt/readings",
            params={"limit": "10000"},
        ).json()["readings"]
    finally:
        for child in reversed(children):
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(timeout=60)
        log.close()
    messages = len(counted.read_bytes().splitlines()) if mqtt else 0
    return Result(
        max(rss) / 2**20,
        rss[-1] / 2**20,
        cpu * 100,
        elapsed,
        len(stored),
        messages,
        agent.returncode,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--baseline", action="store_true", help="also measure without [mqtt]")
    args = parser.parse_args()
    runs = [False, True] if args.baseline else [True]
    for mqtt in runs:
        with tempfile.TemporaryDirectory(prefix="edge-mqtt-") as work:
            result = measure(Path(work), mqtt=mqtt, seconds=args.seconds, warmup=args.warmup)
        label = "with [mqtt], discovery on" if mqtt else "without [mqtt]"
        print(f"{label}: window {result.elapsed:.0f} s after {args.warmup:.0f} s warm-up")
        print(f"  agent RSS: max {result.rss_max:.1f} MB, last {result.rss_last:.1f} MB (<= 60)")
        print(f"  agent CPU: {result.cpu_pct:.2f} % of one core (<= 2 %)")
        print(f"  readings stored by the hub meanwhile: {result.stored}")
        if mqtt:
            rate = result.messages / result.elapsed
            print(f"  MQTT messages received on ems/#: {result.messages} ({rate:.0f}/s)")
        print(f"  agent exit code on SIGTERM: {result.exit_code}")


if __name__ == "__main__":
    main()
