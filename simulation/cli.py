"""``ems sim``: serve simulated sites as Modbus devices and print where.

One site per ``--sites``, on consecutive TCP ports from ``--tcp``'s port, seeds
``--seed``, ``--seed + 1`` ...; with ``--rtu-pty`` each site also serves RTU on a
pseudo-terminal whose path is printed. Each plant starts at its scenario's own
simulated day and hour (``simulation/plant/scenarios.py``; printed at start),
not at the wall clock's. Reads for unit ids not on the bus get no answer and one
log line a minute. Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
from contextlib import AsyncExitStack
from datetime import timedelta

from simulation.plant import Scenario
from simulation.runner import SimulatedSite
from simulation.site import REGISTER_MAPS, Unit


class SimError(Exception):
    """A one-line usage error."""


def _endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SimError(f"--tcp: expected HOST:PORT, not {text!r}")
    return host, int(port)


def _check(args: argparse.Namespace) -> tuple[str, int]:
    host, port = _endpoint(args.tcp)
    try:
        Scenario.parse(args.scenario)
    except ValueError as err:
        raise SimError(f"--scenario: {err}") from err
    if not 0 < args.speed < math.inf:
        raise SimError("--speed must be a number > 0")
    if not 1 <= args.sites <= 1000 or port + args.sites - 1 > 65535:
        raise SimError("--sites must be 1..1000 and fit the port range")
    return host, port


_DEVICES = {
    Unit.INVERTER: "battery inverter (sunspec, models 1 + 103 + 124 at 40000)",
    Unit.GRID_METER: "grid meter (eastron_sdm630)",
    Unit.CHARGER: "solar charge controller (epever_tracer)",
    Unit.BMS: "battery BMS (seplos_v3)",
}


async def _serve(args: argparse.Namespace, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        for i in range(args.sites):
            site = SimulatedSite(
                scenario=args.scenario,
                seed=args.seed + i,
                speed=args.speed,
                tcp=(host, port + i),
                rtu=args.rtu_pty,
                name=f"site{i + 1}",
            )
            await stack.enter_async_context(site)
            line = f"site {i + 1}: modbus tcp {host}:{site.tcp_port}"
            if args.rtu_pty:
                line += f"  rtu {site.rtu_path} (115200 8N1)"
            print(line, flush=True)
        for unit in Unit:
            print(f"  unit {int(unit)}: {_DEVICES[unit]}; {REGISTER_MAPS[unit].source}")
        plant = site.plant
        local = plant.time + timedelta(hours=plant.utc_offset_h)
        print(
            f"scenario {plant.scenario.value} from {local:%d %b %H:%M} local, "
            f"speed x{args.speed:g}, seed {args.seed}; Ctrl-C stops",
            flush=True,
        )
        await stop.wait()


def main(args: argparse.Namespace) -> int:
    try:
        host, port = _check(args)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args, host, port))
    except SimError as err:
        print(f"ems sim: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"ems sim: cannot serve: {err}", file=sys.stderr)
        return 1
    return 0
