"""``ems demo``: the hub (embedded SQLite), the simulated site and this agent, in one command.

The hub and the simulator run as child processes (``ems hub serve``,
``ems sim``), exactly as an operator would start them; the agent runs here.
Everything lives in a temporary directory that is removed at the end. Ctrl-C
(or SIGTERM) stops the agent first, so it flushes and gets its acks, then the
simulator and the hub, each with SIGTERM, waiting for them to exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
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
from pathlib import Path
from typing import Final

from edge.config import parse_config

__all__ = ["main", "simulated_site_config"]

logger = logging.getLogger(__name__)

DEVICE_ID: Final = "ems_demo"
START_TIMEOUT_S: Final = 60.0

# The four devices of the simulated site (DESIGN.md, "Simulated site"): unit, name, role, profile.
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
) -> str:
    """The agent's config file (DESIGN.md's TOML) for the simulated site on ``modbus_port``.

    One text for the demo, the edge tests and the benchmarks, so they poll the
    same devices under the same names.
    """
    timeout = f"timeout_s = {timeout_s}\n" if timeout_s is not None else ""
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _token(env: dict[str, str]) -> str:
    done = subprocess.run(
        _ems("hub", "token", "add", DEVICE_ID),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise DemoError(f"ems hub token add failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def _run_agent(config_path: Path, token: str) -> None:
    from edge.agent import Agent

    config = parse_config(config_path.read_text(), base_dir=config_path.parent)

    async def run() -> None:
        agent = Agent(config, token=token)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, agent.stop)
        await agent.run()

    asyncio.run(run())


def main(args: argparse.Namespace) -> int:
    hub_port = int(args.port)
    if _accepts(hub_port):
        _say(f"ems demo: port {hub_port} is in use (try --port)", error=True)
        return 1
    sim_port = _free_port()
    with tempfile.TemporaryDirectory(prefix="ems-demo-") as work:
        root = Path(work)
        env = {**os.environ, "EMS_DATA_DIR": str(root / "hub")}
        env.pop("EMS_DATABASE_URL", None)
        try:
            token = _token(env)
            with (
                _child(
                    "hub",
                    _ems("hub", "serve", "--port", str(hub_port)),
                    env,
                    root / "hub.log",
                ) as hub,
                _child(
                    "sim",
                    _ems("sim", "--tcp", f"127.0.0.1:{sim_port}"),
                    env,
                    root / "sim.log",
                ) as sim,
            ):
                _wait(
                    "the hub",
                    hub,
                    lambda: _http_ok(f"http://127.0.0.1:{hub_port}/healthz"),
                    root / "hub.log",
                )
                _wait("the simulator", sim, lambda: _accepts(sim_port), root / "sim.log")
                config_path = root / "edge.toml"
                config_path.write_text(
                    simulated_site_config(
                        device_id=DEVICE_ID,
                        hub_url=f"ws://127.0.0.1:{hub_port}",
                        modbus_port=sim_port,
                        buffer_path="buffer.db",
                    )
                )
                _say(f"dashboard: http://127.0.0.1:{hub_port}/devices/{DEVICE_ID}")
                _say(f"all devices: http://127.0.0.1:{hub_port}/  (Ctrl-C stops everything)")
                # The children share our terminal: Ctrl-C reaches them too, and the
                # context managers above wait for them to exit.
                _run_agent(config_path, token)
        except DemoError as err:
            _say(f"ems demo: {err}", error=True)
            return 1
        except KeyboardInterrupt:
            pass
    _say("ems demo: stopped")
    return 0
