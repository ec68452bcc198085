"""Edge agent memory and CPU while polling the four simulated devices at one reading per second.

Targets (docs/benchmarks.md, "Targets"): RSS <= 60 MB; CPU <= 2 % of one core here
(a Pi is 5-10x slower).

Starts ``ems hub serve`` (embedded SQLite), ``ems sim`` and ``ems edge run`` as
separate processes, exactly as deployed, lets the agent warm up, then samples
the agent's RSS every second and its CPU time over the measuring window
(bench/edge_site.py).

    .venv/bin/python bench/edge_agent_resources.py                  # 120 s window
    .venv/bin/python bench/edge_agent_resources.py --seconds 10     # a quick check
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

# bench/ is on the path when run as a script
from edge_site import agent_usage, simulated_site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=10.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="edge-res-") as work,
        simulated_site(Path(work), "bench_agent") as site,
    ):
        agent = site.start_agent()
        time.sleep(args.warmup)
        usage = agent_usage(agent, args.seconds)
        stored = site.stored()
    print(
        f"window: {usage.elapsed_s:.0f} s after {args.warmup:.0f} s warm-up; 4 devices, 1 reading/s"
    )
    print(
        f"agent RSS: max {usage.rss_max_mb:.1f} MB, last {usage.rss_last_mb:.1f} MB (target <= 60)"
    )
    print(f"agent CPU: {usage.cpu_pct:.2f} % of one core (target <= 2 %)")
    print(f"readings stored by the hub meanwhile: {stored}")
    print(f"agent exit code on SIGTERM: {agent.returncode}")


if __name__ == "__main__":
    main()
