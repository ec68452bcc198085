"""Which frames go to which hubs, and in what batches. Pure: plain values, no I/O.

- :class:`WatchBook`, at the hub a device is registered at: which other hubs
  have a dashboard for it (announced by ``watch`` control messages, and read
  from the device's watcher set when it connects). Frames of a device nobody
  else watches are never published: pub/sub carries only what some hub needs.
- :class:`Batcher`: frames queued on the hot path, taken as one device message
  per device (and epoch) per flush, in the order they were queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.cluster.wire import Code, DeviceMessage
from hub.metrics import ClusterCounters


@dataclass(slots=True)
class WatchBook:
    """device id -> {hub id: until}, ``until`` on any clock the caller keeps using."""

    hub_id: str
    _watchers: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, device_id: str, hub: str, until: float) -> None:
        if hub == self.hub_id:
            return  # our own dashboards get frames first-hand
        hubs = self._watchers.setdefault(device_id, {})
        hubs[hub] = max(until, hubs.get(hub, until))

    def remove(self, device_id: str, hub: str) -> None:
        hubs = self._watchers.get(device_id)
        if hubs is not None:
            hubs.pop(hub, None)
            if not hubs:
                del self._watchers[device_id]

    def wanted(self, device_id: str) -> bool:
        """Hot path: one dict look-up. Expired entries go in :meth:`expire`."""
        return device_id in self._watchers

    def expire(self, now: float) -> int:
        gone = 0
        for device_id in list(self._watchers):
            hubs = self._watchers[device_id]
            for hub in [h for h, until in hubs.items() if until <= now]:
                del hubs[hub]
                gone += 1
            if not hubs:
                del self._watchers[device_id]
        return gone

    def devices(self) -> list[str]:
        return list(self._watchers)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One device message to publish; ``stored``: a status to keep for late watchers."""

    device_id: str
    message: DeviceMessage
    stored: bool = False
    version: int = -1  # of the stored status


@dataclass(slots=True)
class Batcher:
    """Frames queued in order; :meth:`take` groups consecutive ones per device and epoch."""

    hub_id: str
    max_frames: int = 100_000  # beyond this, frames are dropped (Redis too slow or down)
    _queue: list[tuple[str, int, Code, str, bool, int]] = field(default_factory=list)
    counters: ClusterCounters = field(default_factory=ClusterCounters)  # the link's

    def add(self, device_id: str, epoch: int, code: Code, frame: str) -> bool:
        if len(self._queue) >= self.max_frames:
            self.counters.frames_dropped += 1
            return False
        self._queue.append((device_id, epoch, code, frame, False, -1))
        return True

    def add_status(
        self, device_id: str, epoch: int, items: Iterable[tuple[Code, str]], version: int
    ) -> None:
        """A status change, stored and published as a message of its own (never dropped)."""
        for code, frame in items:
            self._queue.append((device_id, epoch, code, frame, True, version))

    def __len__(self) -> int:
        return len(self._queue)

    def take(self) -> list[Outgoing]:
        """Everything queued: per device, its frames in order, cut where epoch or kind change.

        Different devices' messages are independent (one channel each), so a
        device's frames are gathered into one message even when other devices'
        frames were queued between them; a stored status is always a message of its
        own, at its place in its device's order.
        """
        queue, self._queue = self._queue, []
        out: list[Outgoing] = []
        open_for: dict[str, int] = {}  # device -> index in out of its open message
        pending: list[list[tuple[Code, str]]] = []
        for device_id, epoch, code, frame, stored, version in queue:
            index = open_for.get(device_id)
            if index is not None:
                current = out[index]
                same = current.message.epoch == epoch and current.stored == stored
                if same and not (stored and code is Code.STATUS):
                    pending[index].append((code, frame))
                    continue
            out.append(Outgoing(device_id, DeviceMessage(self.hub_id, epoch, ()), stored, version))
            pending.append([(code, frame)])
            open_for[device_id] = len(out) - 1
        return [
            Outgoing(
                o.device_id,
                DeviceMessage(self.hub_id, o.message.epoch, tuple(items)),
                o.stored,
                o.version,
            )
            for o, items in zip(out, pending, strict=True)
        ]
