"""Device profiles by the names the edge config uses (DESIGN.md, "Edge config file").

A profile is a :class:`~drivers.profile.RegisterMap`, except ``sunspec``, whose
map comes from discovery on the device (:mod:`drivers.profiles.sunspec`).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Final

from drivers.errors import ProfileError
from drivers.profile import RegisterMap
from drivers.profiles.eastron import SDM120, SDM630
from drivers.profiles.epever import TRACER
from drivers.profiles.generic import load_generic
from drivers.profiles.seplos import SEPLOS_V3


class ProfileName(enum.Enum):
    SUNSPEC = "sunspec"
    EASTRON_SDM630 = "eastron_sdm630"
    EASTRON_SDM120 = "eastron_sdm120"
    EPEVER_TRACER = "epever_tracer"
    SEPLOS_V3 = "seplos_v3"
    GENERIC = "generic"


FIXED_MAPS: Final[dict[ProfileName, RegisterMap]] = {
    ProfileName.EASTRON_SDM630: SDM630,
    ProfileName.EASTRON_SDM120: SDM120,
    ProfileName.EPEVER_TRACER: TRACER,
    ProfileName.SEPLOS_V3: SEPLOS_V3,
}


def profile_name(text: str) -> ProfileName:
    try:
        return ProfileName(text)
    except ValueError as err:
        names = ", ".join(p.value for p in ProfileName)
        raise ProfileError("profile", f"unknown profile {text!r} (one of {names})") from err


def fixed_map(name: ProfileName, profile_file: str | Path | None = None) -> RegisterMap | None:
    """The register map of a profile, or None for ``sunspec`` (discovered on the device)."""
    if name is ProfileName.SUNSPEC:
        return None
    if name is ProfileName.GENERIC:
        if profile_file is None:
            raise ProfileError("profile_file", "profile = 'generic' needs a profile_file")
        return load_generic(profile_file)
    return FIXED_MAPS[name]


__all__ = ["FIXED_MAPS", "ProfileName", "fixed_map", "profile_name"]
