"""Roles: which section of a reading a device's values fill (docs/protocol.md, "A reading").

A device in the edge config has one role; a profile in the catalogue names the
role its device usually takes (a meter ``grid``, a BMS ``battery``).
"""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.StrEnum):
    INVERTER = "inverter"
    GRID = "grid"
    SOLAR = "solar"
    BATTERY = "battery"
