"""What the edge agent benchmarks share: a simulated site as deployed, and the agent's usage.

``ems hub serve`` (embedded SQLite), ``ems sim`` and ``ems edge run`` run as separate
processes, exactly as deployed; :func:`agent_usage` samples the agent's RSS every
second and its CPU time over the measuring window. Used by
bench/edge_agent_resources.py and bench/edge_mqtt_resources.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

# bench/ is on the path when run as a script
from hub_process import EMS, add_token, free_port

from edge.demo import simulated_site_config

REPO = Path(__file__).resolve().parents[1]


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start")


def accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True


@dataclass
class Site:
    """A running hub and simulator; children started here are stopped with the site."""

    root: Path
    device_id: str
    env: dict[str, str]
    token: str
    hub_port: int
    sim_port: int
    log: IO[bytes]
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdout", self.log)
        kwargs.setdefault("stderr", self.log)
        child = subprocess.Popen(command, **kwargs)
        self.children.append(child)
        return child

    def start_agent(self, extra_config: str = "") -> subprocess.Popen[bytes]:
        """``ems edge run`` polling the simulator's four devices, streaming to the hub."""
        config = simulated_site_config(
            device_id=self.device_id,
            hub_url=f"ws://127.0.0.1:{self.hub_port}",
            modbus_port=self.sim_port,
            buffer_path=self.root / "buffer.db",
        )
        (self.root / "edge.toml").write_text(config + extra_config)
        return self.spawn(
            [*EMS, "edge", "run", "--config", str(self.root / "edge.toml")],
            env={**self.env, "EMS_TOKEN": self.token},
        )

    def stored(self) -> int:
        """How many of the device's readings the hub has stored."""
        answer = httpx.get(
            f"http://127.0.0.1:{self.hub_port}/api/devices/{self.device_id}/readings",
            params={"limit": "10000"},
        )
        return len(answer.json()["readings"])


@contextlib.contextmanager
def simulated_site(root: Path, device_id: str) -> Iterator[Site]:
    """The hub and the simulator, started and answering; SIGTERM to every child on exit."""
    env = {**os.environ, "EMS_DATA_DIR": str(root / "hub"), "PYTHONPATH": str(REPO)}
    env.pop("EMS_DATABASE_URL", None)
    with (root / "all.log").open("wb") as log:
        site = Site(root, device_id, env, add_token(env, device_id), free_port(), free_port(), log)
        try:
            site.spawn([*EMS, "hub", "serve", "--port", str(site.hub_port)], env=env)
            site.spawn([*EMS, "sim", "--tcp", f"127.0.0.1:{site.sim_port}"], env=env)
            wait_until(
                lambda: httpx.get(f"http://127.0.0.1:{site.hub_port}/healthz").status_code == 200,
                "the hub",
            )
            wait_until(lambda: accepts(site.sim_port), "the simulator")
            yield site
        finally:
            for child in reversed(site.children):
                child.send_signal(signal.SIGTERM)
            for child in site.children:
                child.wait(timeout=60)


@dataclass(frozen=True)
class Usage:
    """The agent's memory and CPU over a measuring window."""

    rss_max_mb: float
    rss_last_mb: float
    cpu_pct: float  # of one core
    elapsed_s: float


def agent_usage(agent: subprocess.Popen[bytes], seconds: float) -> Usage:
    """RSS sampled every second and CPU time over the next ``seconds``."""
    process = psutil.Process(agent.pid)
    before = process.cpu_times()
    began = time.monotonic()
    rss: list[int] = []
    while time.monotonic() - began < seconds:
        rss.append(process.memory_info().rss)
        time.sleep(1.0)
    after = process.cpu_times()
    elapsed = time.monotonic() - began
    cpu = (after.user + after.system - before.user - before.system) / elapsed
    return Usage(max(rss) / 2**20, rss[-1] / 2**20, cpu * 100, elapsed)
