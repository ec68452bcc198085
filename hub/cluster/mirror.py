"""A hub's view of devices registered at other hubs, for its own dashboards.

Pure: device messages in (hub/cluster/wire.py), delivery events out; no I/O.

A dashboard must get the device's status first, then its last reading, then
every live reading in order, each once (docs/protocol.md, "Hub -> dashboard"),
wherever the device is connected. A dashboard that opens here for a device
registered elsewhere waits (``pending``) until a **snapshot** (status, health,
last reading) arrives on the device's channel, then takes every later frame:
the channel is ordered, so nothing can slip in between or be seen twice.

Each status carries a version (``wire.status_version``: its owner's epoch, and
online before offline), so a late message of an owner that lost the device
(a lower epoch) changes nothing, and a snapshot answering another hub's watch
repeats nothing to dashboards already following.

The events are applied by ``ConnectionManager.deliver_remote`` in order:
``FRAME`` goes to the dashboards already following, ``SNAPSHOT`` to those
waiting, which then follow.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from hub.cluster.wire import Code, DeviceMessage, status_online, status_version
from hub.metrics import ClusterCounters


class EventKind(enum.Enum):
    FRAME = "frame"  # for dashboards following the device
    SNAPSHOT = "snapshot"  # for dashboards waiting to start


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    frames: tuple[str, ...]


@dataclass(slots=True)
class View:
    version: int = -1  # of the status held; -1: none yet
    epoch: int = -1  # the highest owner epoch heard from
    status: str | None = None
    health: str | None = None
    last: str | None = None

    def snapshot(self) -> tuple[str, ...]:
        return tuple(f for f in (self.status, self.health, self.last) if f is not None)


@dataclass(frozen=True, slots=True)
class StoredStatus:
    """The last status published for the device (Redis ``ems:snap:{id}``)."""

    version: int
    message: DeviceMessage


@dataclass(frozen=True, slots=True)
class Settlement:
    events: tuple[Event, ...]
    # The device is online at a live hub, which answers the watch with a fresher
    # snapshot (with the last reading): wait for it, a bounded time.
    wait: bool


class Mirror:
    """Views of the devices this hub's dashboards watch (see module docstring)."""

    def __init__(
        self,
        hub_id: str,
        offline_status: Callable[[str], str],
        counters: ClusterCounters | None = None,  # the link's
    ) -> None:
        self.hub_id = hub_id
        self._offline_status = offline_status  # device id -> status frame, online false
        self._views: dict[str, View] = {}
        self.counters = ClusterCounters() if counters is None else counters

    def view(self, device_id: str) -> View | None:
        return self._views.get(device_id)

    def forget(self, device_id: str) -> None:
        self._views.pop(device_id, None)

    def apply(self, device_id: str, message: DeviceMessage) -> list[Event]:
        """A message from the device's channel."""
        if message.hub == self.hub_id:
            return []  # our own: this hub's dashboards had those frames first-hand
        view = self._views.setdefault(device_id, View())
        if message.epoch < view.epoch:
            self.counters.stale_dropped += 1
            return []
        events: list[Event] = []
        items = message.items
        i = 0
        while i < len(items):
            code, frame = items[i]
            if code is Code.STATUS:
                j = i + 1
                health = last = None
                while j < len(items) and items[j][0] in (Code.SNAP_HEALTH, Code.SNAP_LAST):
                    if items[j][0] is Code.SNAP_HEALTH:
                        health = items[j][1]
                    else:
                        last = items[j][1]
                    j += 1
                version = status_version(message.epoch, status_online(frame))
                events.extend(self._snapshot(view, message.epoch, version, frame, health, last))
                i = j
                continue
            view.epoch = max(view.epoch, message.epoch)
            if code is Code.READING or code is Code.SNAP_LAST:
                view.last = frame
            elif code is Code.HEALTH or code is Code.SNAP_HEALTH:
                view.health = frame
            events.append(Event(EventKind.FRAME, (frame,)))
            i += 1
        return events

    def settle(self, device_id: str, stored: StoredStatus | None, owner_alive: bool) -> Settlement:
        """The stored status, read once subscribed to the device's channel.

        Anything published before the subscription is in it (the owner stores and
        publishes in one script); anything after reaches us on the channel.
        """
        view = self._views.setdefault(device_id, View())
        if stored is None:
            if view.version >= 0:
                return Settlement((Event(EventKind.SNAPSHOT, view.snapshot()),), wait=False)
            return Settlement(self._offline(device_id, view, -1), wait=False)
        status_items = [f for code, f in stored.message.items if code is Code.STATUS]
        if not status_items:
            return Settlement((), wait=False)
        online = status_online(status_items[0])
        if online and owner_alive:
            # Its owner answers our watch with the last reading too; until then keep
            # what is stored, in case it is news (a resync after an outage).
            events = self.apply(device_id, stored.message) if stored.version > view.version else []
            return Settlement(tuple(e for e in events if e.kind is EventKind.FRAME), wait=True)
        if online:
            # Its owner's lease ran out without a word: it died. Offline, since unknown.
            return Settlement(self._offline(device_id, view, stored.version + 1), wait=False)
        events = self.apply(device_id, stored.message)
        if not any(e.kind is EventKind.SNAPSHOT for e in events):
            events.append(Event(EventKind.SNAPSHOT, view.snapshot()))
        return Settlement(tuple(events), wait=False)

    def current(self, device_id: str) -> tuple[str, ...]:
        """What a waiting dashboard gets when the owner's answer does not come."""
        view = self._views.setdefault(device_id, View())
        if view.status is None:
            view.status = self._offline_status(device_id)
        return view.snapshot()

    def _offline(self, device_id: str, view: View, version: int) -> tuple[Event, ...]:
        frame = self._offline_status(device_id)
        version = max(version, view.version)
        return tuple(self._snapshot(view, view.epoch, version, frame, None, None))

    @staticmethod
    def _snapshot(
        view: View, epoch: int, version: int, status: str, health: str | None, last: str | None
    ) -> list[Event]:
        if version < view.version:
            return []  # an older status than one already shown
        events: list[Event] = []
        if version > view.version and view.status != status:
            events.append(Event(EventKind.FRAME, (status,)))
        view.version = version
        view.epoch = max(view.epoch, epoch)
        view.status = status
        view.health = health or view.health
        view.last = last or view.last
        events.append(Event(EventKind.SNAPSHOT, view.snapshot()))
        return events
