"""``ems sim``: serve simulated sites as Modbus devices and print where.

One site per ``--sites``, on consecutive TCP ports from ``--tcp``'s port, seeds
``--seed``, ``--seed + 1`` ...; with ``--rtu-pty`` each site also serves RTU on a
pseudo-terminal whose path is printed. Each plant starts at its scenario's own
simulated day and hour (``simulation/plant/scenarios.py``; printed at start),
not at the wall clock's. Reads for unit ids not on the bus get no answer and one
log line a minute. ``--site NAME`` picks the devices (:mod:`simulation.sites`;
``--site list`` lists them); the agent's ``[[bus]]`` and ``[[device]]`` tables
for the first site are printed. Runs until SIGINT/SIGTERM.
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

from simulation.layout import SiteLayout, config_lines
from simulation.plant import Scenario
from simulation.runner import SimulatedSite
from simulation.sites import SITES, site_layout


class SimError(Exception):
    """A one-line usage error."""


def _endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SimError(f"--tcp: expected HOST:PORT, not {text!r}")
    return host, int(port)


def _check(args: argparse.Namespace) -> tuple[str, int, SiteLayout]:
    host, port = _endpoint(args.tcp)
    try:
        layout = site_layout(args.site)
    except ValueError as err:
        raise SimError(f"--site: {err}") from err
    try:
        Scenario.parse(args.scenario)
    except ValueError as err:
        raise SimError(f"--scenario: {err}") from err
    if not 0 < args.speed < math.inf:
        raise SimError("--speed must be a number > 0")
    if not 1 <= args.sites <= 1000 or port + args.sites - 1 > 65535:
        raise SimError("--sites must be 1..1000 and fit the port range")
    return host, port, layout


def list_sites() -> str:
    """``ems sim --site list``: every site and its devices."""
    blocks = []
    for layout in SITES.values():
        lines = [f"{layout.name}: {layout.description}"]
        lines += [f"  unit {d.unit}: {d.profile} ({d.role.value})" for d in layout.devices]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


async def _serve(args: argparse.Namespace, host: str, port: int, layout: SiteLayout) -> None:
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
                layout=layout,
            )
            await stack.enter_async_context(site)
            line = f"site {i + 1}: modbus tcp {host}:{site.tcp_port}"
            if args.rtu_pty:
                line += f"  rtu {site.rtu_path} (115200 8N1)"
            print(line, flush=True)
        for device in layout.devices:
            what = device.description or f"{device.role.value} ({device.profile})"
            print(f"  unit {device.unit}: {what}; {device.served.source}")
        print(f"\n# the agent's config for site 1 (site {layout.name}):")
        print(config_lines(layout, host=host, port=port))
        print()
        plant = site.plant
        local = plant.time + timedelta(hours=plant.utc_offset_h)
        print(
            f"scenario {plant.scenario.value} from {local:%d %b %H:%M} local, "
            f"speed x{args.speed:g}, seed {args.seed}; Ctrl-C stops",
            flush=True,
        )
        await stop.wait()


def main(args: argparse.Namespace) -> int:
    if args.site == "list":
        print(list_sites())
        return 0
    try:
        host, port, layout = _check(args)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args, host, port, layout))
    except SimError as err:
        print(f"ems sim: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"ems sim: cannot serve: {err}", file=sys.stderr)
        return 1
    return 0
