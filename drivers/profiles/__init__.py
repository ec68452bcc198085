"""The device catalogue: every profile a config may name, in one place.

A profile name in the edge config (``profile = "eastron_sdm630"``, docs/configuration.md)
stands for a :class:`~drivers.profiles.device_profile.DeviceProfile`: its register
map (None for ``sunspec``, whose map comes from discovery on the device, see
:mod:`drivers.profiles.sunspec`), its usual role, its transports and quirks, and
how ``ems edge scan`` recognises it. ``generic`` is the one profile not in the
catalogue: its map is the user's TOML file (:mod:`drivers.profiles.generic`).
The same format with a ``[device]`` table makes the families shipped as TOML
files (:mod:`drivers.profiles.maps`) full catalogue entries.

Each family module lists its own ``PROFILES``; adding a family is adding its
module to ``_FAMILIES``. ``ems devices`` and docs/devices.md are made from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Final

from drivers.bus import BusType
from drivers.errors import ProfileError
from drivers.profile import RegisterMap
from drivers.profiles import (
    chint,
    deye,
    eastron,
    epever,
    fronius,
    goodwe,
    growatt,
    huawei,
    jkbms,
    maps,
    seplos,
    sma,
    solaredge,
    solax,
    sungrow,
    sunspec,
    victron,
)
from drivers.profiles.device_profile import DeviceProfile
from drivers.profiles.generic import load_generic

__all__ = [
    "GENERIC",
    "PROFILES",
    "DeviceProfile",
    "fixed_map",
    "get_profile",
    "profile_names",
    "scan_settle_s",
    "scan_units",
]

GENERIC: Final = "generic"

# One module per vendor family, each exporting ``PROFILES: tuple[DeviceProfile, ...]``.
_FAMILIES: Final[tuple[ModuleType, ...]] = (
    sunspec,
    # Families shipped as TOML maps (drivers/profiles/maps). Before eastron: the
    # SDM72's signature is the SDM630's plus a register only it has, and the
    # first signature that matches names the device.
    maps,
    eastron,
    epever,
    seplos,
    chint,
    sma,
    deye,
    growatt,
    huawei,
    jkbms,
    victron,
    solax,
    sungrow,
    goodwe,
    solaredge,
    fronius,
)


def _index(profiles: Iterable[DeviceProfile]) -> Mapping[str, DeviceProfile]:
    index: dict[str, DeviceProfile] = {}
    for profile in profiles:
        if profile.name in index or profile.name == GENERIC:
            raise ProfileError("profile", f"{profile.name!r} is defined twice")
        index[profile.name] = profile
    return MappingProxyType(index)


PROFILES: Final[Mapping[str, DeviceProfile]] = _index(
    profile for family in _FAMILIES for profile in family.PROFILES
)


def profile_names() -> tuple[str, ...]:
    """Every name a config may give as ``profile``, ``generic`` last."""
    return (*PROFILES, GENERIC)


def get_profile(name: str) -> DeviceProfile:
    """The catalogue entry of ``name``; a one-line error listing the names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        names = ", ".join(profile_names())
        raise ProfileError("profile", f"unknown profile {name!r} (one of {names})") from None


def scan_units(bus_type: BusType) -> tuple[int, ...]:
    """The unit ids ``ems edge scan`` tries when not told: every id on a serial line
    (Modbus over Serial Line V1.02, 2.3: 1-247); on TCP, where each silent id costs a
    timeout, 1-10 and every id a catalogue device answers at by default (a gateway's
    services, an inverter's own port at 0)."""
    if bus_type is BusType.RTU:
        return tuple(range(1, 248))
    known = {unit for p in PROFILES.values() for unit in (p.default_unit, *p.units)}
    return tuple(sorted(known | set(range(1, 11))))


def scan_settle_s(bus_type: BusType, unit: int) -> float:
    """How long ``ems edge scan`` keeps quiet after connecting before it asks ``unit``:
    the longest ``settle_s`` of the catalogue devices of that bus type answering there by
    default (a Huawei SUN2000 ignores requests for about a second after a connect)."""
    return max(
        (
            p.settle_s
            for p in PROFILES.values()
            if bus_type in p.transports and unit in (p.default_unit, *p.units)
        ),
        default=0.0,
    )


def fixed_map(name: str, profile_file: str | Path | None = None) -> RegisterMap | None:
    """The register map of a profile, or None for one discovered on the device (``sunspec``)."""
    if name == GENERIC:
        if profile_file is None:
            raise ProfileError("profile_file", "profile = 'generic' needs a profile_file")
        return load_generic(profile_file)
    return get_profile(name).register_map
