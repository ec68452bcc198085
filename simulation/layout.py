"""A simulated site's devices: which unit ids answer, with which registers, showing what.

Pure logic. A :class:`SiteLayout` is a set of :class:`SimulatedDevice` s on one
bus (one TCP port, one RTU line). Each device encodes, with the very register
map the drivers decode with, what it measures of the plant: ``measures`` turns
the plant's protocol sections (the whole site: inverter, grid, solar, battery
and ``extra``) into the sections the device shows. A hybrid inverter shows
nearly all of them (its meter and its battery are reached through it); a meter
shows the grid. The layouts ``ems sim --site NAME`` serves are listed in
:mod:`simulation.sites`.

:func:`config_lines` prints the edge config an installer would write for the
site, so that ``ems sim --site NAME`` says how to read what it serves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from drivers.profile import RegisterImage, RegisterMap, encode_map
from telemetry.roles import Role

__all__ = ["PlantSections", "SimulatedDevice", "SiteLayout", "config_lines", "encode_layout"]

PlantSections = Mapping[str, Mapping[str, object]]
DeviceSections = dict[str, dict[str, object]]


def whole_site(sections: PlantSections) -> DeviceSections:
    """Every section of the plant, as a hybrid inverter with its meter and battery shows them."""
    return {name: dict(values) for name, values in sections.items()}


@dataclass(frozen=True)
class SimulatedDevice:
    """One device of a simulated site."""

    unit: int
    profile: str  # the catalogue name the edge reads it with (drivers.profiles)
    role: Role  # the role its config line gives it
    name: str  # the device's name in the config lines ("inverter", "meter")
    served: RegisterMap  # every register it answers (limits and holes included)
    measures: Callable[[PlantSections], DeviceSections] = whole_site
    # Documented registers beyond ``served`` that the device answers (zeros, constants).
    fill: Callable[[RegisterImage], None] | None = None
    description: str = ""
    # The word an address the image lacks reads as, inside a read that touches a
    # defined one (None: 0); a read touching none is refused (DeviceSpec.undefined).
    undefined: int | None = None
    # Its config line's ``total`` (docs/configuration.md, "Several devices per
    # role"): False for a sub-meter, True for one of several that add up, None unset.
    total: bool | None = None

    def encode(self, sections: PlantSections) -> RegisterImage:
        image = encode_map(self.served, self.measures(sections))
        if self.fill is not None:
            self.fill(image)
        return image


@dataclass(frozen=True)
class SiteLayout:
    """The devices ``ems sim --site NAME`` serves, and how its Modbus TCP endpoint behaves."""

    name: str
    description: str
    devices: tuple[SimulatedDevice, ...]
    # The device behind the TCP port serves one client at a time (SolarEdge, Huawei):
    # a second connection is closed at once, or, with ``new_client_wins``, the
    # newcomer is served and the connection before it closed.
    single_client: bool = False
    new_client_wins: bool = False
    # Requests sooner than this after a TCP connect get no answer (a Huawei SUN2000).
    settle_s: float = 0.0
    # A gateway in front of the units: a request for a unit id it does not have gets
    # this exception code, not silence (a Victron GX: 0x0A, "gateway path unavailable").
    absent_unit_code: int | None = None
    # ... for addresses below this (those the gateway knows); beyond, exception 02.
    absent_unit_addresses: int = 0x10000

    def __post_init__(self) -> None:
        units = [d.unit for d in self.devices]
        if len(set(units)) != len(units):
            raise ValueError(f"site {self.name}: two devices share a unit id")
        names = [d.name for d in self.devices]
        if len(set(names)) != len(names):
            raise ValueError(f"site {self.name}: two devices share a name")
        if self.new_client_wins and not self.single_client:
            raise ValueError(f"site {self.name}: new_client_wins needs single_client")
        if self.settle_s < 0:
            raise ValueError(f"site {self.name}: settle_s must be >= 0")

    def device(self, unit: int) -> SimulatedDevice:
        for device in self.devices:
            if device.unit == unit:
                return device
        raise KeyError(unit)


def encode_layout(layout: SiteLayout, sections: PlantSections) -> dict[int, RegisterImage]:
    """Every device's register image, by unit id, for one plant state."""
    return {device.unit: device.encode(sections) for device in layout.devices}


def config_lines(layout: SiteLayout, *, host: str, port: int, rtu_path: str = "") -> str:
    """The ``[[bus]]`` and ``[[device]]`` tables that read ``layout`` as served.

    ``total`` is written as each device gives it: ``false`` on a sub-meter, ``true``
    on each of several devices of a role that add up (docs/configuration.md).
    """
    lines = ["[[bus]]", 'name = "sim"']
    if rtu_path:
        lines += ['type = "rtu"', f'device = "{rtu_path}"', "baudrate = 115200"]
    else:
        lines += ['type = "tcp"', f'host = "{host}"', f"port = {port}"]
    for device in layout.devices:
        lines += [
            "",
            "[[device]]",
            f'name = "{device.name}"',
            f'role = "{device.role.value}"',
            f'profile = "{device.profile}"',
            'bus = "sim"',
            f"unit = {device.unit}",
        ]
        if device.total is not None:
            lines.append(f"total = {'true' if device.total else 'false'}")
    return "\n".join(lines)
