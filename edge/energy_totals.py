"""The site's running energy totals: every reading's increments added up (pure).

Each reading's ``energy`` (docs/protocol.md, "Energy") holds the site's energy
since the previous reading, each quantity a number >= 0. Their running sums are
what Home Assistant's Energy dashboard needs from a site whose devices have no
energy counters of their own (edge/mqtt_publish.py publishes them as the
"site" device, docs/home-assistant.md): counters that only ever grow.

The totals after a reading are stored in the outbox in the transaction that
stores that reading (edge/outbox.py, ``energy_totals``), as the integrator's
state is, so a restarted agent goes on from the totals of the last reading it
kept and a published total never goes down.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = ["QUANTITIES", "EnergyTotals"]

# The quantities of a reading's ``energy`` (docs/protocol.md, "Energy"), in the
# order the protocol lists them.
QUANTITIES: Final = ("pv_wh", "import_wh", "export_wh", "charge_wh", "discharge_wh", "house_wh")


def _usable(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


@dataclass(frozen=True, slots=True)
class EnergyTotals:
    """Wh per quantity since the outbox was created; a quantity never measured is absent."""

    wh: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def added(self, energy: Mapping[str, object]) -> EnergyTotals:
        """These totals plus a reading's ``energy`` (its other keys, and anything that
        is not a number >= 0, are not energy and are left out)."""
        sums = dict(self.wh)
        for quantity in QUANTITIES:
            value = energy.get(quantity)
            if _usable(value):
                assert isinstance(value, int | float)
                sums[quantity] = sums.get(quantity, 0.0) + float(value)
        return EnergyTotals(MappingProxyType(sums))

    def to_json(self) -> str:
        return json.dumps({q: self.wh[q] for q in QUANTITIES if q in self.wh})

    @classmethod
    def from_json(cls, text: str) -> EnergyTotals:
        """The totals stored by :meth:`to_json`; ValueError names what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"energy totals are not JSON: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"energy totals must be a JSON object, not {type(data).__name__}")
        unknown = sorted(set(data) - set(QUANTITIES))
        if unknown:
            raise ValueError(f"energy totals hold unknown quantities: {', '.join(unknown)}")
        for quantity, value in data.items():
            if not _usable(value):
                raise ValueError(f"energy total {quantity} is {value!r}, not a number >= 0")
        return cls(MappingProxyType({q: float(data[q]) for q in QUANTITIES if q in data}))
