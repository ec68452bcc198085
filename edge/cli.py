"""Handlers of ``ems edge run|probe|scan|status`` (declared in ems/cli.py; README.md).

Each takes the parsed arguments and returns the exit code: 0 done, 1 a runtime
failure (a device that does not answer), 2 a config error. Errors are one line
on stderr; a config error names the key (edge/config.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from drivers.profiles import PROFILES
from edge.config import ConfigError, EdgeConfig, load_config, resolve_token, tls_context

if TYPE_CHECKING:
    from drivers.profiles.identify import Identity

logger = logging.getLogger(__name__)

EXIT_FAILURE = 1
EXIT_CONFIG = 2
# Behind the agent's own shutdown deadline (edge/agent.py, 8 s) and before
# systemd's SIGKILL (TimeoutStopSec=20 in the Ansible role's unit).
HARD_STOP_S: Final = 12.0


def _fail(message: str, code: int = EXIT_FAILURE) -> int:
    print(message if message.startswith("config error") else f"ems: {message}", file=sys.stderr)
    return code


def _config(args: argparse.Namespace) -> EdgeConfig:
    return load_config(Path(args.config))


def run(args: argparse.Namespace) -> int:
    """``ems edge run``: the agent, until SIGTERM or SIGINT (then exit 0)."""
    from edge.agent import Agent, AgentError
    from edge.logs import configure, resolve_format

    try:
        log_format = resolve_format(getattr(args, "log_format", None), os.environ)
    except ValueError as err:
        return _fail(str(err), EXIT_CONFIG)
    configure(log_format, journal=bool(os.environ.get("JOURNAL_STREAM")))
    try:
        config = _config(args)
        token = resolve_token(config.hub)
        tls_context(config.hub)  # an unreadable ca_file is a config error, before anything runs
    except ConfigError as err:
        return _fail(str(err), EXIT_CONFIG)

    hard_stop = threading.Timer(HARD_STOP_S, _hard_stop)
    hard_stop.daemon = True

    async def main() -> None:
        agent = Agent(config, token=token)

        def on_signal() -> None:
            agent.stop()
            if not hard_stop.is_alive():
                hard_stop.start()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        await agent.run()

    try:
        asyncio.run(main())
    except AgentError as err:
        return _fail(str(err), EXIT_CONFIG if str(err).startswith("config error") else 1)
    finally:
        hard_stop.cancel()
    return 0


def _hard_stop() -> None:
    """The last resort of a shutdown (a thread: it works even if the event loop is stuck)."""
    logger.critical("shutdown did not finish within %.0f s: exiting now", HARD_STOP_S)
    logging.shutdown()
    os._exit(EXIT_FAILURE)


def probe(args: argparse.Namespace) -> int:
    """``ems edge probe``: read one configured device once and print its decoded values."""
    from drivers.errors import DriverError
    from drivers.transports import open_transport
    from edge.poller import make_device

    try:
        config = _config(args)
        device = config.device(args.device_name)
    except ConfigError as err:
        return _fail(str(err), EXIT_CONFIG)
    except KeyError:
        names = ", ".join(d.name for d in config.devices)
        return _fail(f"no device named {args.device_name!r} (configured: {names})", EXIT_CONFIG)

    async def read() -> dict[str, object]:
        async with open_transport(config.bus(device.bus)) as transport:
            reading = await make_device(transport, device).read()
        return {
            "device": device.name,
            "read_at": reading.read_at.isoformat(),
            "transactions": reading.transactions,
            "duration_s": round(reading.duration_s, 4),
            "sections": {k: dict(v) for k, v in reading.sections.items()},
        }

    try:
        result = asyncio.run(read())
    except DriverError as err:
        return _fail(f"{device.name} (bus {device.bus}, unit {device.unit}): {err}")
    print(json.dumps(result, indent=2))
    return 0


def scan(args: argparse.Namespace) -> int:
    """``ems edge scan``: the unit ids that answer on a bus, what they are, and their config."""
    from drivers.bus import BusType
    from drivers.device import scan as scan_units
    from drivers.errors import DriverError
    from drivers.profiles import scan_settle_s
    from drivers.profiles import scan_units as default_units
    from drivers.profiles.identify import identify
    from drivers.transports import open_transport

    try:
        config = _config(args)
        bus = config.bus(args.bus_name)
    except ConfigError as err:
        return _fail(str(err), EXIT_CONFIG)
    except KeyError:
        names = ", ".join(b.name for b in config.buses)
        return _fail(f"no bus named {args.bus_name!r} (configured: {names})", EXIT_CONFIG)
    wanted: tuple[int, ...] = args.units or default_units(bus.type)
    if bus.type is BusType.RTU and not all(1 <= unit <= 247 for unit in wanted):
        # Modbus over Serial Line V1.02, 2.3: 0 is broadcast, 248-255 are reserved.
        return _fail("--units: an rtu bus takes unit ids 1 to 247", EXIT_CONFIG)

    async def units() -> list[Identity]:
        found = []
        for unit in wanted:
            # A fresh connection per unit: a TCP client drops its connection after a
            # few silent units, which would hide the units after them.
            async with open_transport(bus) as transport:
                # A device that ignores requests just after a connect would seem absent.
                await asyncio.sleep(scan_settle_s(bus.type, unit))
                if await scan_units(transport, [unit]):
                    found.append(await identify(transport, unit))
        return found

    try:
        found = asyncio.run(units())
    except DriverError as err:
        return _fail(f"bus {bus.name}: {err}")
    if not found:
        print(f"no unit answered on bus {bus.name}", file=sys.stderr)
        return 0
    for identity in found:
        profile = identity.profile if identity.profile is not None else "unknown"
        print(f"unit {identity.unit}: {profile}: {identity.description}")
    print(f"\n# [[device]] tables for bus {bus.name}, to paste into the agent's config:")
    print(scan_config(bus.name, found))
    return 0


def scan_config(bus: str, found: Sequence[Identity]) -> str:
    """``[[device]]`` TOML for what a scan found; unknown devices as commented templates.

    A second device of a role is commented out too, for the operator to choose:
    added up with the first (``total = true`` on both) or a sub-meter
    (``total = false``), docs/configuration.md, "Several devices per role".
    """
    blocks: list[str] = []
    roles: set[str] = set()
    names: set[str] = set()
    for identity in found:
        profile = identity.profile
        entry = PROFILES.get(profile) if profile is not None else None
        role, base = (entry.role.value, entry.config_name) if entry else ("inverter", "device")
        name = base if base not in names else f"{base}{identity.unit}"
        names.add(name)
        lines = [
            "[[device]]",
            f'name = "{name}"',
            f'role = "{role}"',
            f'profile = "{profile or "generic"}"',
        ]
        if profile is None:
            lines.append('profile_file = "registers.toml"  # describe its registers there')
        lines += [f'bus = "{bus}"', f"unit = {identity.unit}"]
        if profile is None:
            lines = [f"# unit {identity.unit} matches no profile; a generic one reads it:"] + [
                f"# {line}" for line in lines
            ]
        elif role in roles:
            lines = [
                f"# a second {role} device: set total = true on both to add them up,",
                "# or total = false on a sub-meter (docs/configuration.md)",
            ] + [f"# {line}" for line in lines]
        else:
            roles.add(role)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{moment.isoformat()} ({(now - moment).total_seconds():.0f} s ago)"


def status(args: argparse.Namespace) -> int:
    """``ems edge status``: buffer depth, oldest unsent reading, last ack, device health."""
    from edge.outbox import OutboxError, read_status

    try:
        config = _config(args)
        state = read_status(config.buffer.path)
    except ConfigError as err:
        return _fail(str(err), EXIT_CONFIG)
    except OutboxError as err:
        return _fail(str(err))
    now = datetime.now(UTC)
    print(f"device_id: {config.device_id}")
    print(f"buffer: {config.buffer.path} ({state.used_bytes / 1024 / 1024:.1f} MB used)")
    print(f"buffered readings: {state.depth} ({state.held} held for a trusted clock)")
    print(f"oldest unsent reading: {_ago(state.oldest_ts, now)}")
    print(f"last ack: {_ago(state.last_ack, now)}")
    print(f"dropped (buffer full): {state.dropped}")
    print(f"parked (the hub failed on them; sent again at the next start): {state.parked}")
    print(f"last seq: {state.last_seq}")
    recorded = {record.device: record for record in state.devices}
    for device in config.devices:
        record = recorded.get(device.name)
        if record is None:
            print(f"device {device.name} ({device.role}): not read yet")
            continue
        line = (
            f"device {device.name} ({device.role}): {record.state} since {_ago(record.since, now)}"
        )
        print(line + (f": {record.error}" if record.error else ""))
    return 0
