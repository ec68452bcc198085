"""``ems demo``: the hub (embedded SQLite), the simulated site and its agents, in one command.

The hub and the simulator run as child processes (``ems hub serve``,
``ems sim``), exactly as an operator would start them; the agents (one per
simulated site) run here. Everything lives in one data directory, printed at
start: ``$EMS_DATA_DIR``, else ``./ems-data`` (the hub's database is ``hub.db`` there,
where ``ems hub serve`` and ``ems hub token`` look too), kept between runs, so a
second run continues the first one's history with the same device tokens;
``--temp`` uses a temporary directory removed at the end instead. Ctrl-C (or
SIGTERM) stops the agents first, so they flush and get their acks, then the
simulator and the hub, each with SIGTERM, waiting for them to exit.

Layout of the data directory::

    hub.db                       the hub's database (SQLite)
    demo/logs/hub.log, sim.log   the children's output
    demo/logs/agent.log          the agents' log (also on the terminal)
    demo/<device_id>/edge.toml   each agent's config
    demo/<device_id>/buffer.db   its buffer (the outbox)
    demo/<device_id>/token       its device token (mode 0600)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edge.config import parse_config

__all__ = ["main", "simulated_site_config"]

logger = logging.getLogger(__name__)

DEVICE_ID: Final = "ems_demo"
DEFAULT_DATA_DIR: Final = "ems-data"
DATABASE_FILE: Final = "hub.db"  # hub.storage.sqlite.DATABASE_FILE, without importing the hub
START_TIMEOUT_S: Final = 60.0
MAX_SITES: Final = 50

# The four devices of the simulated site (simulation/default_site.py): unit, name, role, profile.
_SIMULATED_DEVICES: Final = (
    (1, "inverter", "inverter", "sunspec"),
    (2, "meter", "grid", "eastron_sdm630"),
    (3, "charger", "solar", "epever_tracer"),
    (4, "bms", "battery", "seplos_v3"),
)


def simulated_site_config(
    *,
    device_id: str,
    hub_url: str,
    modbus_port: int,
    buffer_path: Path | str,
    max_mb: int = 64,
    interval_s: float = 1.0,
    timeout_s: float | None = None,
    time_scale: float = 1.0,
) -> str:
    """The agent's config file (docs/configuration.md) for the simulated site on ``modbus_port``.

    One text for the demo, the edge tests and the benchmarks, so they poll the
    same devices under the same names. ``time_scale``: the simulator's
    ``--speed``, so the agent's energy counts plant time as the simulated
    counters do (``[energy] time_scale``, edge/energy.py).
    """
    timeout = f"timeout_s = {timeout_s}\n" if timeout_s is not None else ""
    energy = f"[energy]\ntime_scale = {time_scale!r}\n\n" if time_scale != 1.0 else ""
    devices = "".join(
        f'\n[[device]]\nname = "{name}"\nrole = "{role}"\nprofile = "{profile}"\n'
        f'bus = "sim"\nunit = {unit}\n'
        for unit, name, role, profile in _SIMULATED_DEVICES
    )
    return (
        f'device_id = "{device_id}"\n\n'
        f'[hub]\nurl = "{hub_url}"\n\n'
        f'[buffer]\npath = "{buffer_path}"\nmax_mb = {max_mb}\n\n'
        f"[sampling]\ninterval_s = {interval_s}\n\n"
        # A laptop, a container or a CI machine may run without an NTP client the
        # kernel knows of: trust the wall clock after 2020 (jumps are still caught).
        "[clock]\nrequire_sync = false\n\n"
        f"{energy}"
        f'[[bus]]\nname = "sim"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {modbus_port}\n'
        f"{timeout}{devices}"
    )


class DemoError(Exception):
    """A part of the demo did not start; one line for the user."""


def _say(text: str, *, error: bool = False) -> None:
    """A line for the person who typed ``ems demo`` (a command's output, not a log)."""
    stream = sys.stderr if error else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that are free now."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = int(sock.getsockname()[1])
        if first + count - 1 <= 65535 and not any(
            _accepts(port) for port in range(first + 1, first + count)
        ):
            return first
    raise DemoError(f"no {count} consecutive free ports for the simulated sites")


def _ems(*args: str) -> list[str]:
    return [sys.executable, "-m", "ems", *args]


def _wait(check: str, process: subprocess.Popen[bytes], ready: object, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise DemoError(f"{check} exited with {process.returncode}: {' / '.join(tail)}")
        if callable(ready) and ready():
            return
        time.sleep(0.1)
    raise DemoError(f"{check} did not start within {START_TIMEOUT_S:.0f} s (see {log})")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True
    return False


@contextlib.contextmanager
def _child(
    name: str, argv: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in 15 s: killing it", name)
                process.kill()
                process.wait()


@dataclass(frozen=True)
class DemoSite:
    """One simulated site and the agent that polls it: its files and its Modbus port."""

    device_id: str
    folder: Path
    modbus_port: int

    @property
    def config(self) -> Path:
        return self.folder / "edge.toml"

    @property
    def buffer(self) -> Path:
        return self.folder / "buffer.db"

    @property
    def token_file(self) -> Path:
        return self.folder / "token"


def _device_ids(sites: int) -> list[str]:
    # One site keeps the plain name the README shows; several are numbered from 1.
    return [DEVICE_ID] if sites == 1 else [f"{DEVICE_ID}_{i + 1}" for i in range(sites)]


def _token(env: dict[str, str], site: DemoSite, database: Path) -> str:
    """The site's device token: the one kept from an earlier run, else a new one."""
    if site.token_file.exists() and database.exists():
        token = site.token_file.read_text().strip()
        if token:
            return token
    done = subprocess.run(
        _ems("hub", "token", "add", site.device_id),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise DemoError(f"ems hub token add failed: {done.stderr.strip()}")
    token = done.stdout.strip().splitlines()[-1]
    site.folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(site.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(token + "\n")
    return token


def _run_agents(sites: list[tuple[DemoSite, str]], log: Path) -> None:
    from edge.agent import Agent

    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    agents = [
        Agent(parse_config(site.config.read_text(), base_dir=site.folder), token=token)
        for site, token in sites
    ]

    async def run() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for agent in agents:
                agent.stop()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop)
        async with asyncio.TaskGroup() as tasks:
            for agent in agents:
                tasks.create_task(agent.run(), name=f"demo.agent[{agent.config.device_id}]")

    try:
        asyncio.run(run())
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _check(args: argparse.Namespace) -> None:
    from simulation.plant import Scenario

    try:
        Scenario.parse(args.scenario)
    except ValueError as err:
        raise DemoError(f"--scenario: {err}") from err
    if not 0 < args.speed < math.inf:
        raise DemoError("--speed must be a number > 0")
    if not 0 < args.port < 65536:
        raise DemoError("--port must be 1..65535")
    if not 1 <= args.sites <= MAX_SITES:
        raise DemoError(f"--sites must be 1..{MAX_SITES}")


@contextlib.contextmanager
def _data_dir(args: argparse.Namespace) -> Iterator[Path]:
    if args.temp:
        with tempfile.TemporaryDirectory(prefix="ems-demo-") as work:
            yield Path(work)
        return
    # The hub's own default ($EMS_DATA_DIR, else ./ems-data): `ems hub token list`
    # and `ems hub serve` run in the same folder then see the demo's database.
    chosen = args.data_dir or os.environ.get("EMS_DATA_DIR") or DEFAULT_DATA_DIR
    root = Path(chosen).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
        # Written now, so a folder the demo cannot write to is this one line,
        # not a failure of the hub or the agent later.
        (root / "demo" / "logs").mkdir(parents=True, exist_ok=True)
        probe = root / "demo" / ".writable"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DemoError(f"cannot use {root} for the demo's data: {err}") from err
    yield root


def _where(root: Path, sites: list[DemoSite], logs: Path, *, temporary: bool) -> None:
    kept = "removed at exit (--temp)" if temporary else "kept between runs; --temp: throw-away"
    _say(f"data: {root} ({kept})")
    _say(f"  database:     {root / DATABASE_FILE}")
    for site in sites:
        _say(f"  edge config:  {site.config}")
        _say(f"  edge buffer:  {site.buffer}")
    _say(f"  logs:         {logs}/ (hub.log, sim.log, agent.log)")


def main(args: argparse.Namespace) -> int:
    hub_port = int(args.port)
    try:
        _check(args)
    except DemoError as err:
        _say(f"ems demo: {err}", error=True)
        return 2
    if _accepts(hub_port):
        _say(f"ems demo: port {hub_port} is in use (try --port)", error=True)
        return 1
    try:
        with _data_dir(args) as root:
            _demo(args, root, hub_port)
    except DemoError as err:
        _say(f"ems demo: {err}", error=True)
        return 1
    except KeyboardInterrupt:
        pass
    _say("ems demo: stopped")
    return 0


def _demo(args: argparse.Namespace, root: Path, hub_port: int) -> None:
    logs = root / "demo" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EMS_DATA_DIR": str(root)}
    env.pop("EMS_DATABASE_URL", None)
    first_port = _free_ports(args.sites)
    sites = [
        DemoSite(device_id, root / "demo" / device_id, first_port + i)
        for i, device_id in enumerate(_device_ids(args.sites))
    ]
    _where(root, sites, logs, temporary=args.temp)
    tokens = [_token(env, site, root / DATABASE_FILE) for site in sites]
    sim_argv = _ems(
        "sim",
        "--tcp",
        f"127.0.0.1:{first_port}",
        "--sites",
        str(args.sites),
        "--scenario",
        args.scenario,
        "--speed",
        f"{args.speed:g}",
    )
    with (
        _child("hub", _ems("hub", "serve", "--port", str(hub_port)), env, logs / "hub.log") as hub,
        _child("sim", sim_argv, env, logs / "sim.log") as sim,
    ):
        _wait(
            "the hub",
            hub,
            lambda: _http_ok(f"http://127.0.0.1:{hub_port}/healthz"),
            logs / "hub.log",
        )
        _wait(
            "the simulator",
            sim,
            lambda: all(_accepts(site.modbus_port) for site in sites),
            logs / "sim.log",
        )
        for site in sites:
            site.folder.mkdir(parents=True, exist_ok=True)
            site.config.write_text(
                simulated_site_config(
                    device_id=site.device_id,
                    hub_url=f"ws://127.0.0.1:{hub_port}",
                    modbus_port=site.modbus_port,
                    buffer_path="buffer.db",
                    time_scale=args.speed,
                )
            )
        _say(
            f"simulated site{'s' if len(sites) > 1 else ''}: scenario {args.scenario}, "
            f"speed x{args.speed:g}, modbus tcp 127.0.0.1:{first_port}"
            + (f"-{first_port + len(sites) - 1}" if len(sites) > 1 else "")
        )
        for site in sites:
            _say(f"dashboard: http://127.0.0.1:{hub_port}/devices/{site.device_id}")
        _say(f"all devices: http://127.0.0.1:{hub_port}/  (Ctrl-C stops everything)")
        # The children share our terminal: Ctrl-C reaches them too, and the
        # context managers above wait for them to exit.
        _run_agents(list(zip(sites, tokens, strict=True)), logs / "agent.log")
