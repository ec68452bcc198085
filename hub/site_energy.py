"""A site's all-time energy totals as the hub publishes them: never smaller (pure).

The MQTT bridge (hub/mqtt_bridge.py) reads each site's sums over every stored
quarter hour (``Storage.energy_total``) and
publishes them as Home Assistant ``total_increasing`` sensors
(docs/home-assistant.md, "The hub: a fleet"). Those sums only grow while the
hub runs: every rollup counts each stored reading once, however late it lands
(hub/storage/energy.py), and the quarter hours ``--retain-rollups`` deletes
stay in them (hub/storage/pruned_energy.py). Two things can still make a read
smaller than the one before: the database may add floats in another order, and
a database restored from an older backup holds less. So a total smaller than the
one last published for the site is not published: the last one is held, until
the stored sum grows past it.

Totals are rounded to the mWh, as the agent's are (edge/mqtt_publish.py): a
rounded non-decreasing sum is non-decreasing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hub.storage.energy import EnergySums
from telemetry.reading import ENERGY_QUANTITIES

__all__ = ["PublishedTotals", "SiteTotals"]


@dataclass(frozen=True, slots=True)
class PublishedTotals:
    """What to publish for a site: Wh per quantity, and the quantities held back."""

    wh: Mapping[str, float]
    held: tuple[str, ...] = ()  # stored sum smaller than the last published: held


class SiteTotals:
    """The totals last published per site, in this process (module docstring)."""

    def __init__(self) -> None:
        self._last: dict[str, dict[str, float]] = {}

    def update(self, site: str, sums: EnergySums | None) -> PublishedTotals:
        """The site's totals from its stored ``sums`` (None: nothing stored), never
        below the last published; a quantity never stored is left out."""
        last = self._last.setdefault(site, {})
        held: list[str] = []
        stored = sums.quantities if sums is not None else (None,) * len(ENERGY_QUANTITIES)
        for quantity, value in zip(ENERGY_QUANTITIES, stored, strict=True):
            if value is None or not math.isfinite(value):
                if quantity in last:
                    held.append(quantity)  # no longer stored (an older backup?): the total stays
                continue
            total = round(value, 3)
            before = last.get(quantity)
            if before is not None and total < before:
                held.append(quantity)
                continue
            last[quantity] = total
        wh: dict[str, float] = {q: last[q] for q in ENERGY_QUANTITIES if q in last}
        return PublishedTotals(MappingProxyType(wh), tuple(held))
