"""Each site's time zone, from its agent's health frames (docs/protocol.md, "Device health").

The zone decides where a site's days and months of energy begin
(docs/protocol.md, "Energy over HTTP"), so it is stored, not only kept in
memory: it must hold after a hub restart, before the agent's next health frame.
An agent sends its health frame on every connection and at every change of a
device's state; the zone is written only when it differs from the one this hub
last stored, so the frames cost no write.
"""

from __future__ import annotations

import functools
import logging
import zoneinfo
from datetime import datetime

from hub.storage.base import Storage, StorageError
from telemetry.client_text import client_text

logger = logging.getLogger(__name__)


@functools.cache
def _known_zones() -> frozenset[str]:
    # The tz database's names (the system's, else the tzdata package's), read once:
    # a name is looked up here before zoneinfo opens any file, so "zone.tab" or a
    # directory never reaches it.
    return frozenset(zoneinfo.available_timezones())


def check_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The zone of an IANA name this hub's tz database has (``Europe/Berlin``).

    Raises ``ValueError`` naming it otherwise. The wire only bounds the name
    (telemetry/health.py): an edge's tz database may be newer than the hub's.
    """
    if name not in _known_zones():
        raise ValueError(f"not an IANA time zone such as Europe/Berlin: '{client_text(name, 64)}'")
    return zoneinfo.ZoneInfo(name)


class SiteZones:
    """The zones this hub process stored, per device id (what needs no second write)."""

    __slots__ = ("_stored",)

    def __init__(self) -> None:
        self._stored: dict[str, str] = {}

    async def remember(self, storage: Storage, device_id: str, zone: str, now: datetime) -> bool:
        """Store ``zone`` as the device's unless it is already; whether it is stored now.

        A zone this hub's tz database lacks is logged and not stored (the site's
        energy keeps its previous zone); a storage failure is logged and
        forgotten: the next health frame tries again.
        """
        if self._stored.get(device_id) == zone:
            return True
        try:
            check_timezone(zone)
        except ValueError as err:
            logger.warning("device %s: time zone not stored: %s", device_id, err)
            return False
        try:
            await storage.set_device_timezone(device_id, zone, now)
        except StorageError as err:
            logger.warning("device %s: time zone %s not stored: %s", device_id, zone, err)
            return False
        self._stored[device_id] = zone
        return True
