"""The narrow interface between one hub's registry and a cluster of hubs.

``hub/connections.py`` (the registry of devices and dashboards) calls a
``Relay`` at the few moments another hub may care about; ``hub/cluster/link.py``
implements it over Redis (docs/architecture.md, "Several hubs"). A single hub has
no relay at all: the registry then behaves exactly as it always did.

Everything here is synchronous and never awaits, except ``watch`` and
``unwatch``, which the dashboard door awaits outside the registry's lock.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class FrameKind(enum.Enum):
    """What a dashboard frame forwarded to other hubs is (hub/cluster/wire.py codes)."""

    READING = "r"
    HEALTH = "h"
    HISTORY = "y"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a dashboard gets first: status, then health and last reading when known."""

    online: bool
    status: str
    health: str | None
    last: str | None

    def frames(self) -> list[str]:
        return [f for f in (self.status, self.health, self.last) if f is not None]


class Relay(Protocol):
    """The registry's view of the other hubs (hub/cluster/link.py)."""

    @property
    def up(self) -> bool:
        """Whether the other hubs can be reached now; when not, everything stays local."""

    def fence_of(self, device_id: str) -> int:
        """The highest epoch claimed for the device that this hub has heard of."""

    def current(self, device_id: str) -> Sequence[str] | None:
        """The snapshot of a device this hub follows already; None when it has none yet."""

    def wants(self, device_id: str) -> bool:
        """Whether another hub has a dashboard for this device (forward its frames)."""

    def forward(self, device_id: str, epoch: int, kind: FrameKind, frame: str) -> None:
        """Queue a frame of a device registered here for the hubs watching it."""

    def owner_changed(self, device_id: str, epoch: int, snapshot: Snapshot) -> None:
        """The device connected here (``snapshot.online``) or left: tell every hub."""

    async def watch(self, device_id: str) -> None:
        """The first dashboard of this device on this hub: follow it wherever it is."""

    async def unwatch(self, device_id: str) -> None:
        """The last dashboard of this device here left."""
