"""Edge agent memory and CPU at one reading per second with Home Assistant over MQTT on.

Targets (docs/benchmarks.md, "Targets"): RSS <= 60 MB; CPU <= 2 % of one core here.

As bench/edge_agent_resources.py (``ems hub serve``, ``ems sim`` and ``ems edge
run`` as separate processes, the four simulated devices, bench/edge_site.py), plus
a private Debian ``mosquitto`` on a free loopback port and an ``[mqtt]`` section
with discovery on: every value of every device is published each second. A
``mosquitto_sub`` on ``#`` counts what reached the broker. With ``--baseline`` the
same run is made first without ``[mqtt]``, so the two are measured on the same
machine minutes apart.

    .venv/bin/python bench/edge_mqtt_resources.py                       # 120 s window
    .venv/bin/python bench/edge_mqtt_resources.py --seconds 60 --baseline
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# bench/ is on the path when run as a script
from edge_site import Usage, accepts, agent_usage, simulated_site, wait_until
from hub_process import free_port


@dataclass(frozen=True)
class Result:
    usage: Usage
    stored: int
    messages: int
    exit_code: int | None


def measure(root: Path, *, mqtt: bool, seconds: float, warmup: float) -> Result:
    counted = root / "messages.txt"
    with simulated_site(root, "bench_mqtt") as site:
        extra_config = ""
        if mqtt:
            broker_port = free_port()
            (root / "mosquitto.conf").write_text(
                f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            )
            broker = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            site.spawn([broker, "-c", str(root / "mosquitto.conf")])
            wait_until(lambda: accepts(broker_port), "mosquitto")
            extra_config = (
                f'\n[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\nha_discovery = true\n'
            )
        agent = site.start_agent(extra_config)
        time.sleep(warmup)
        if mqtt:
            with counted.open("wb") as out:
                site.spawn(
                    ["mosquitto_sub", "-p", str(broker_port), "-t", "ems/#", "-v"], stdout=out
                )
        usage = agent_usage(agent, seconds)
        stored = site.stored()
    messages = len(counted.read_bytes().splitlines()) if mqtt else 0
    return Result(usage, stored, messages, agent.returncode)


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
        usage = result.usage
        label = "with [mqtt], discovery on" if mqtt else "without [mqtt]"
        print(f"{label}: window {usage.elapsed_s:.0f} s after {args.warmup:.0f} s warm-up")
        print(
            f"  agent RSS: max {usage.rss_max_mb:.1f} MB, last {usage.rss_last_mb:.1f} MB (<= 60)"
        )
        print(f"  agent CPU: {usage.cpu_pct:.2f} % of one core (<= 2 %)")
        print(f"  readings stored by the hub meanwhile: {result.stored}")
        if mqtt:
            rate = result.messages / usage.elapsed_s
            print(f"  MQTT messages received on ems/#: {result.messages} ({rate:.0f}/s)")
        print(f"  agent exit code on SIGTERM: {result.exit_code}")


if __name__ == "__main__":
    main()
