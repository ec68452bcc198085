"""The simulated sites ``ems sim --site NAME`` serves, by name.

Each is a :class:`~simulation.layout.SiteLayout` over the same plant (sun,
house, battery, grid): the same physics, read through another vendor's
devices. ``default`` is the four-device kit of docs/architecture.md
("Simulated site"); the others show a device family of the catalogue
(docs/devices.md) as an installer meets it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from simulation import (
    deye_site,
    fronius_site,
    goodwe_site,
    growatt_site,
    huawei_site,
    jk_site,
    meters_site,
    multi_site,
    sma_site,
    solaredge_site,
    solax_site,
    sungrow_site,
    victron_site,
)
from simulation.default_site import DEFAULT_LAYOUT
from simulation.layout import SiteLayout

__all__ = ["DEFAULT_SITE", "SITES", "site_layout"]

DEFAULT_SITE: Final = DEFAULT_LAYOUT.name


def _index(layouts: Iterable[SiteLayout]) -> Mapping[str, SiteLayout]:
    index: dict[str, SiteLayout] = {}
    for layout in layouts:
        if layout.name in index:
            raise ValueError(f"site {layout.name!r} is defined twice")
        index[layout.name] = layout
    return MappingProxyType(index)


# One line per site; a family's site lives beside its simulated devices.
SITES: Final[Mapping[str, SiteLayout]] = _index(
    (
        DEFAULT_LAYOUT,
        sma_site.LAYOUT,
        deye_site.LAYOUT,
        deye_site.LAYOUT_3P,
        growatt_site.LAYOUT,
        huawei_site.LAYOUT,
        jk_site.LAYOUT,
        victron_site.LAYOUT,
        sungrow_site.LAYOUT,
        goodwe_site.LAYOUT,
        solax_site.LAYOUT,
        solaredge_site.LAYOUT,
        meters_site.LAYOUT,
        fronius_site.LAYOUT,
        multi_site.LAYOUT,
    )
)


def site_layout(name: str) -> SiteLayout:
    """The layout called ``name``; a ValueError listing the names otherwise."""
    try:
        return SITES[name]
    except KeyError:
        raise ValueError(f"unknown site {name!r} (one of {', '.join(SITES)})") from None
