"""Readings of the simulated site as the edge sends them, for the storage benchmarks.

The kit never stores the plant's own numbers: the simulated site
(simulation/default_site.py) encodes the plant into each device's register image with
the vendor's register map, the edge decodes those registers with the same maps
(drivers/profile.py, ``decode_map``), composes the four devices' sections into
one reading (edge/compose.py) and adds the energy since the previous reading
(telemetry/energy_increments.py, with the counters' widths and steps the edge
reads from the maps, edge/energy.py). So a stored value has its register's
resolution: ``230.1`` V from a 0.1 V register, not the plant's
``230.08463121``. This module does exactly that, without sockets, one reading
per simulated second.

``Values.PLANT`` skips the registers: the plant's sections at full precision
(``6.142306328127996``) go straight into compose, what bench/storage_size.py
measured before (docs/benchmarks.md, "Storage size"); the energy is computed
the same way for both.

    .venv/bin/python bench/site_readings.py --rows 3 [--values plant]

prints the readings' JSON as the hub receives them, one per line.
"""

from __future__ import annotations

import argparse
import enum
import itertools
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from drivers.profile import decode_map
from edge.compose import compose
from edge.config import Role, parse_config
from edge.energy import energy_settings
from hub.storage.base import StoredReading
from simulation.default_site import (
    DEFAULT_LAYOUT,
    REGISTER_MAPS,
    Unit,
    device_sections,
    encode_site,
)
from simulation.layout import config_lines
from simulation.plant import Plant
from telemetry import Reading
from telemetry.energy_increments import EnergyIntegrator, EnergySettings

__all__ = ["Values", "bodies", "readings", "stream"]

ROLES: Final = {
    Unit.INVERTER: Role.INVERTER,
    Unit.GRID_METER: Role.GRID,
    Unit.CHARGER: Role.SOLAR,
    Unit.BMS: Role.BATTERY,
}

# What `ems sim` prints for an installer to read the default site (simulation/layout.py).
_CONFIG_HEAD: Final = """
device_id = "site-1"
[hub]
url = "ws://127.0.0.1:8000"
token = "bench"
[buffer]
path = "buffer.db"
"""


class Values(enum.StrEnum):
    """Where a reading's values come from."""

    REGISTERS = "registers"  # the devices' register images, decoded as the edge does
    PLANT = "plant"  # the plant's own floats, at full precision


def _energy_settings() -> EnergySettings:
    """The settings an agent reading the default site gets (edge/energy.py)."""
    text = _CONFIG_HEAD + config_lines(DEFAULT_LAYOUT, host="127.0.0.1", port=5020)
    return energy_settings(parse_config(text, base_dir=Path("/tmp")))


def _decoded(sections: Mapping[str, Mapping[str, object]]) -> dict[Role, Any]:
    """What each device's registers give the edge for one plant state."""
    images = encode_site(sections)
    return {ROLES[unit]: decode_map(REGISTER_MAPS[unit], images[unit]) for unit in Unit}


def _plant(sections: Mapping[str, Mapping[str, object]]) -> dict[Role, Any]:
    return {ROLES[unit]: device_sections(unit, sections) for unit in Unit}


def bodies(
    start: datetime, *, first_seq: int = 0, values: Values = Values.REGISTERS
) -> Iterator[dict[str, Any]]:
    """Reading bodies (``seq``, ``ts``, sections, ``energy``), one per second, without end."""
    plant = Plant("sunny", seed=1, start=start)
    integrator = EnergyIntegrator(_energy_settings())
    devices = _decoded if values is Values.REGISTERS else _plant
    for n in itertools.count():
        sections = plant.step(1.0).sections()
        composed = compose(devices(sections))
        # The outbox's JSON text, as the hub parses it (floats as JSON gives them back).
        body: dict[str, Any] = json.loads(composed.body())
        increments = integrator.step(float(first_seq + n), composed.sections)
        body["seq"] = first_seq + n
        body["ts"] = start + timedelta(seconds=n)
        if increments is not None:
            body["energy"] = increments.wire()
        yield body


def stream(
    start: datetime,
    device_id: str = "site-1",
    *,
    first_seq: int = 0,
    values: Values = Values.REGISTERS,
) -> Iterator[StoredReading]:
    """Stored readings of the simulated site, one per simulated second from ``start``."""
    for body in bodies(start, first_seq=first_seq, values=values):
        yield StoredReading(device_id, Reading.model_validate(body), body["ts"])


def readings(
    count: int,
    start: datetime,
    device_id: str = "site-1",
    *,
    first_seq: int = 0,
    values: Values = Values.REGISTERS,
) -> list[StoredReading]:
    """The first ``count`` readings of :func:`stream`."""
    return list(
        itertools.islice(stream(start, device_id, first_seq=first_seq, values=values), count)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--values", type=Values, choices=list(Values), default=Values.REGISTERS)
    args = parser.parse_args()
    start = datetime(2026, 6, 21, 10, tzinfo=UTC)
    for reading in readings(args.rows, start, values=args.values):
        print(reading.reading.model_dump_json(exclude_none=True))


if __name__ == "__main__":
    main()
