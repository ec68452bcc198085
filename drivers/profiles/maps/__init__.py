"""Device families shipped only as TOML register maps (``drivers/profiles/maps/*.toml``).

Each file is a generic map (:mod:`drivers.profiles.generic`) with a ``[device]``
table (:mod:`drivers.profiles.generic_device`): it becomes the catalogue entry
named after the file (``carlo_gavazzi_em24.toml`` -> ``profile =
"carlo_gavazzi_em24"``), read, served by the simulator and recognised by a scan
exactly as a coded family. The files are package data, read through
:mod:`importlib.resources` so that an installed wheel finds them too.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Final

from drivers.errors import ProfileError
from drivers.profiles.device_profile import DeviceProfile
from drivers.profiles.generic import parse_device_profile

__all__ = ["PROFILES", "shipped_maps"]


def shipped_maps() -> tuple[DeviceProfile, ...]:
    """Every shipped map as a catalogue entry, in file name order."""
    profiles = []
    files = sorted(
        (f for f in resources.files(__name__).iterdir() if f.name.endswith(".toml")),
        key=lambda f: f.name,
    )
    for entry in files:
        source = f"drivers/profiles/maps/{entry.name}"
        try:
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ProfileError("profile_file", f"{source}: invalid TOML: {err}") from err
        name = entry.name.removesuffix(".toml")
        profiles.append(parse_device_profile(data, name=name, source=source))
    return tuple(profiles)


PROFILES: Final = shipped_maps()
