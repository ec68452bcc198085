"""Who is connected: the registry of publishers (devices) and subscribers (dashboards).

Follows docs/protocol.md ("Doors": the ghost protocol):

- one ``asyncio.Lock`` serialises connect and disconnect, so "is an old socket
  registered? replace it" is a single atomic step;
- a new authenticated publisher for a device id marks the old session
  ``replaced``, closes its replies and takes its place under the lock; the old
  socket is then closed with 1008, which ends its pending ``receive()`` at once,
  and its loop drops anything it still reads (``PublisherSession.replaced``);
- disconnect is identity-checked: a kicked socket's late disconnect never
  removes its successor;
- publishers are never sent data (only acks and errors, by their own DeviceReplies).

``publish`` is the hot path: synchronous, one JSON encoding per reading, then
``DashboardFeed.offer`` per dashboard, which never awaits a socket. Agents'
health frames and notices of stored history (hub/device_health.py) reach
dashboards the same way.

Several hubs (docs/architecture.md, "Several hubs"): with a ``relay``
(hub/relay.py), each session carries its ownership **epoch**; a session whose
device was claimed under a higher epoch never registers (``Registration.SUPERSEDED``),
and a registered one is closed with 1008 once a higher claim is heard of
(``supersede``). The frames of a device registered here are forwarded to the
hubs watching it; a dashboard here for a device registered elsewhere waits for
that device's snapshot (``pending``), then follows it (``deliver_remote``).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hub.cluster.lease import superseded
from hub.cluster.mirror import Event, EventKind
from hub.device_health import SiteHealth, health_frame, history_frame
from hub.device_replies import DeviceReplies
from hub.fanout import DashboardFeed
from hub.metrics import RegistryCounters
from hub.relay import FrameKind, Relay, Snapshot
from hub.sockets import SocketLike, close_quietly
from telemetry import CloseCode, Reading, format_ts

logger = logging.getLogger(__name__)

KICK_TIMEOUT_S = 2.0  # a kicked peer that does not take its close frame is aborted


def reading_frame(device_id: str, reading: Reading, received_at: datetime) -> str:
    """The dashboard frame of a reading: ``telemetry.dashboard_reading``, encoded.

    The same JSON object as ``json.dumps(dashboard_reading(...))`` (a test holds
    them equal), built in about a third of the time: pydantic-core serialises
    the sections, and only ``ts`` goes through ``format_ts``. This runs once
    per live reading of every watched device, on the hot path.
    """
    body = reading.__pydantic_serializer__.to_json(reading, exclude={"ts"}, exclude_none=True)
    head = (
        f'{{"type":"reading","device_id":{json.dumps(device_id)},'
        f'"received_at":"{format_ts(received_at)}","ts":"{format_ts(reading.ts)}"'
    )
    rest = body.decode()
    return head + ("," + rest[1:] if len(rest) > 2 else "}")


def status_frame(device_id: str, online: bool, since: datetime | None) -> str:
    """The dashboard status frame (docs/protocol.md, "Hub -> dashboard")."""
    return json.dumps(
        {
            "type": "status",
            "device_id": device_id,
            "online": online,
            "since": format_ts(since) if since is not None else None,
        },
        separators=(",", ":"),
    )


class Registration(enum.Enum):
    REGISTERED = "registered"
    STOPPING = "stopping"  # the hub is stopping: close with 1001
    SUPERSEDED = "superseded"  # a newer claim for the device exists: close with 1008


@dataclass(eq=False, slots=True)
class PublisherSession:
    """One authenticated device connection."""

    device_id: str
    socket: SocketLike
    token_hash: str
    replies: DeviceReplies
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Event-loop time of the last frame received: the idle sweep (hub/runtime.py)
    # closes a socket silent for the idle timeout (docs/security.md, "Limits").
    last_heard: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    # Set under the manager's lock when this session stops being the device's
    # registered one (replaced by a newer socket, token revoked, hub stopping):
    # from then on its loop drops whatever it reads.
    ended: bool = False
    # Why it was ended by the hub (1008 replaced or revoked, 1001 stopping); None
    # when the peer left. Whoever closes the socket first uses this code.
    close_code: CloseCode | None = None
    # Several hubs (hub/cluster/lease.py): the claim's epoch (0 for a single hub),
    # until when (loop time) its lease holds on this hub's clock, and whether Redis
    # knows of the claim (False: made while Redis was down, claimed on its return).
    epoch: int = 0
    lease_until: float = float("inf")
    claimed: bool = True


class ConnectionManager:
    """The registry of publishers and subscribers, and the live fan-out."""

    def __init__(self, counters: RegistryCounters | None = None) -> None:
        self.lock = asyncio.Lock()
        self._publishers: dict[str, PublisherSession] = {}
        self._subscribers: dict[str, set[DashboardFeed]] = {}
        # device id -> its last live reading; encoded only when a dashboard needs it, so a
        # device nobody watches costs no JSON encoding on the hot path.
        self._last_reading: dict[str, tuple[Reading, datetime]] = {}
        self._offline_since: dict[str, datetime] = {}
        # device id -> its agent's latest health frame (hub/device_health.py); kept
        # after a disconnect as the last known, replaced by the next connection's.
        self._health: dict[str, SiteHealth] = {}
        self.counters = RegistryCounters() if counters is None else counters
        self.closing = False  # set when the hub stops: no new registrations
        # Several hubs: the other hubs (None for a single hub), and the dashboards
        # waiting for the snapshot of a device registered elsewhere.
        self.relay: Relay | None = None
        self._pending: dict[str, set[DashboardFeed]] = {}
        self._watch_counts: dict[str, int] = {}

    # -- publishers -------------------------------------------------------------

    async def connect_publisher(self, session: PublisherSession) -> Registration:
        """Register ``session``; an older one for the device is kicked with 1008.

        STOPPING when the hub is stopping (the caller closes with 1001);
        SUPERSEDED when a newer claim for the device exists (the caller closes with 1008).
        """
        device_id = session.device_id
        async with self.lock:
            if self.closing:
                self._end(session, CloseCode.GOING_AWAY)
                return Registration.STOPPING
            old = self._publishers.get(device_id)
            fence = self.relay.fence_of(device_id) if self.relay is not None else 0
            if superseded(session.epoch, old.epoch if old is not None else None, fence):
                self._end(session, CloseCode.POLICY_VIOLATION)
                self.counters.replaced += 1
                return Registration.SUPERSEDED
            if old is not None:
                self._end(old, CloseCode.POLICY_VIOLATION)
                self.counters.replaced += 1
            self._publishers[device_id] = session
            self._offline_since.pop(device_id, None)
            self._broadcast(device_id, self._status_frame(device_id))
            # Dashboards waiting for another hub's snapshot: the device is here now.
            self._release_pending_locked(device_id, None)
            if self.relay is not None:
                self.relay.owner_changed(device_id, session.epoch, self.local_snapshot(device_id))
        if old is not None:
            logger.info("device %s: a newer connection replaced the old one", device_id)
            await close_quietly(old.socket, CloseCode.POLICY_VIOLATION, within=KICK_TIMEOUT_S)
        return Registration.REGISTERED

    async def disconnect_publisher(self, session: PublisherSession) -> bool:
        """Unregister ``session`` if (and only if) it is still the registered one."""
        async with self.lock:
            session.replies.close()
            if self._publishers.get(session.device_id) is not session:
                return False  # a kicked socket's late disconnect: its successor stays
            del self._publishers[session.device_id]
            session.ended = True
            self._went_offline(session)
            return True

    async def kick(
        self, sessions: Iterable[PublisherSession], code: CloseCode, *, reason: str = ""
    ) -> int:
        """Unregister and close these sessions (a revoked token, idle, the hub stopping)."""
        kicked: list[PublisherSession] = []
        async with self.lock:
            for session in sessions:
                if self._publishers.get(session.device_id) is session:
                    del self._publishers[session.device_id]
                    self._went_offline(session)
                if not session.ended:
                    self._end(session, code)
                    kicked.append(session)
        await asyncio.gather(
            *(close_quietly(s.socket, code, within=KICK_TIMEOUT_S, reason=reason) for s in kicked)
        )
        return len(kicked)

    async def supersede(self, session: PublisherSession) -> int:
        """Close a session whose device was claimed at another hub (1008); 1 if it was open.

        No offline status: the device is online at its new hub, whose own status
        reaches this hub's dashboards on the device's channel.
        """
        async with self.lock:
            if self._publishers.get(session.device_id) is session:
                del self._publishers[session.device_id]
                self._offline_since[session.device_id] = datetime.now(UTC)
            if session.ended:
                return 0
            self._end(session, CloseCode.POLICY_VIOLATION)
            self.counters.replaced += 1
        logger.info("device %s: claimed at another hub, closing it here", session.device_id)
        await close_quietly(session.socket, CloseCode.POLICY_VIOLATION, within=KICK_TIMEOUT_S)
        return 1

    def _went_offline(self, session: PublisherSession) -> None:
        """Under the lock: ``session`` was the registered one and is not any more."""
        device_id = session.device_id
        self._offline_since[device_id] = datetime.now(UTC)
        self._broadcast(device_id, self._status_frame(device_id))
        if self.relay is not None:
            self.relay.owner_changed(device_id, session.epoch, self.local_snapshot(device_id))

    @staticmethod
    def _end(session: PublisherSession, code: CloseCode) -> None:
        session.ended = True
        session.close_code = code
        session.replies.close()

    def publisher(self, device_id: str) -> PublisherSession | None:
        return self._publishers.get(device_id)

    def publishers(self) -> list[PublisherSession]:
        return list(self._publishers.values())

    def is_online(self, device_id: str) -> bool:
        return device_id in self._publishers

    # -- subscribers ------------------------------------------------------------

    async def close_all(self, code: CloseCode, *, within: float = 3.0) -> None:
        """The hub is stopping: refuse newcomers, close every socket with ``code``."""
        async with self.lock:
            self.closing = True
        await self.kick(self.publishers(), code)
        feeds = self.feeds()
        for feed in feeds:
            feed.request_close(code)
        if feeds:
            # Wait (bounded) for the close frames to go out: uvicorn's own shutdown,
            # which runs next, would close what is left with 1012.
            waiters = [asyncio.create_task(feed.finished.wait()) for feed in feeds]
            await asyncio.wait(waiters, timeout=within)
            for waiter in waiters:
                waiter.cancel()

    @asynccontextmanager
    async def subscribe(self, device_id: str, feed: DashboardFeed) -> AsyncIterator[None]:
        """Register a dashboard: it gets status, then the last reading, then live ones.

        Registration and the two first frames happen under the lock with no
        await in between, and ``publish`` is synchronous: no live reading can
        slip in before them or be seen twice.
        """
        relay = self.relay
        async with self.lock:
            if self.closing:
                feed.request_close(CloseCode.GOING_AWAY)
            following = self._watch_counts.get(device_id, 0) > 0
            if relay is not None and relay.up and device_id not in self._publishers:
                # Registered elsewhere, or nowhere: its snapshot comes from the other hubs,
                # or from what this hub follows of it already.
                known = relay.current(device_id) if following else None
                if known is None or self._pending.get(device_id):
                    self._pending.setdefault(device_id, set()).add(feed)
                else:
                    self._subscribers.setdefault(device_id, set()).add(feed)
                    for frame in known:
                        feed.offer(frame)
            else:
                self._subscribers.setdefault(device_id, set()).add(feed)
                for frame in self.local_snapshot(device_id).frames():
                    feed.offer(frame)
            first = not following
            self._watch_counts[device_id] = self._watch_counts.get(device_id, 0) + 1
        try:
            if relay is not None and first:
                await relay.watch(device_id)
            yield
        finally:
            for registry in (self._subscribers, self._pending):
                feeds = registry.get(device_id)
                if feeds is not None:
                    feeds.discard(feed)
                    if not feeds:
                        del registry[device_id]
            left = self._watch_counts.get(device_id, 1) - 1
            if left > 0:
                self._watch_counts[device_id] = left
            else:
                self._watch_counts.pop(device_id, None)
                if relay is not None:
                    await relay.unwatch(device_id)

    def feeds(self) -> list[DashboardFeed]:
        return [
            feed
            for registry in (self._subscribers, self._pending)
            for feeds in registry.values()
            for feed in feeds
        ]

    def dashboard_count(self) -> int:
        return sum(len(feeds) for feeds in self._subscribers.values()) + sum(
            len(feeds) for feeds in self._pending.values()
        )

    def local_snapshot(self, device_id: str) -> Snapshot:
        """What a new dashboard gets first from this hub's own knowledge."""
        health = self._health.get(device_id)
        last = self._last_reading.get(device_id)
        return Snapshot(
            online=device_id in self._publishers,
            status=self._status_frame(device_id),
            health=health_frame(device_id, health) if health is not None else None,
            last=self._reading_frame(device_id, *last) if last is not None else None,
        )

    # -- several hubs: frames of devices registered elsewhere -------------------------------

    def deliver_remote(self, device_id: str, epoch: int, events: Sequence[Event]) -> None:
        """Apply a mirror's events (hub/cluster/mirror.py), in order; never awaits.

        Dropped when the device is registered here under this epoch or a newer
        one: this hub's dashboards get its frames first-hand.
        """
        local = self._publishers.get(device_id)
        if local is not None and local.epoch >= epoch:
            return
        for event in events:
            if event.kind is EventKind.SNAPSHOT:
                self._release_pending_locked(device_id, event.frames)
            else:
                for frame in event.frames:
                    self._broadcast(device_id, frame)

    def release_pending(self, device_id: str, frames: Sequence[str] | None) -> None:
        """Dashboards waiting for a snapshot start with ``frames`` (None: this hub's own)."""
        self._release_pending_locked(device_id, frames)

    def _release_pending_locked(self, device_id: str, frames: Sequence[str] | None) -> None:
        # Synchronous, so "under the lock" or not makes no difference to ordering.
        waiting = self._pending.pop(device_id, None)
        if not waiting:
            return
        if frames is None:
            frames = self.local_snapshot(device_id).frames()
        for feed in waiting:
            for frame in frames:
                feed.offer(frame)
        self._subscribers.setdefault(device_id, set()).update(waiting)

    # -- hot path ---------------------------------------------------------------

    def publish(self, device_id: str, reading: Reading, received_at: datetime) -> None:
        """Push a live reading to the device's dashboards now; never awaits."""
        self._last_reading[device_id] = (reading, received_at)
        feeds = self._subscribers.get(device_id)
        relay = self.relay
        forward = relay is not None and relay.wants(device_id)
        if feeds or forward:
            frame = self._reading_frame(device_id, reading, received_at)
            for feed in feeds or ():
                feed.offer(frame)
            if forward:
                self._forward(device_id, FrameKind.READING, frame)

    def set_health(self, device_id: str, health: SiteHealth) -> None:
        """An agent's new health frame: keep it, push it to the device's dashboards."""
        self._health[device_id] = health
        forward = self.relay is not None and self.relay.wants(device_id)
        if self._subscribers.get(device_id) or forward:
            frame = health_frame(device_id, health)
            self._broadcast(device_id, frame)
            if forward:
                self._forward(device_id, FrameKind.HEALTH, frame)

    def health(self, device_id: str) -> SiteHealth | None:
        return self._health.get(device_id)

    def watched(self, device_id: str) -> bool:
        """Whether a dashboard, here or at another hub, is subscribed to the device now."""
        return bool(self._subscribers.get(device_id)) or (
            self.relay is not None and self.relay.wants(device_id)
        )

    def history_stored(self, device_id: str, start: datetime, end: datetime) -> None:
        """Readings of a batch in ``[start, end]`` were committed: dashboards may fetch them."""
        if self.watched(device_id):
            frame = history_frame(device_id, start, end)
            self._broadcast(device_id, frame)
            if self.relay is not None and self.relay.wants(device_id):
                self._forward(device_id, FrameKind.HISTORY, frame)

    def _forward(self, device_id: str, kind: FrameKind, frame: str) -> None:
        session = self._publishers.get(device_id)
        if session is not None and self.relay is not None:
            self.relay.forward(device_id, session.epoch, kind, frame)

    @staticmethod
    def _reading_frame(device_id: str, reading: Reading, received_at: datetime) -> str:
        return reading_frame(device_id, reading, received_at)

    def _broadcast(self, device_id: str, frame: str) -> None:
        for feed in self._subscribers.get(device_id, ()):
            feed.offer(frame)

    def _status_frame(self, device_id: str) -> str:
        session = self._publishers.get(device_id)
        if session is not None:
            return status_frame(device_id, True, session.connected_at)
        return status_frame(device_id, False, self._offline_since.get(device_id))

    def last_reading(self, device_id: str) -> tuple[Reading, datetime] | None:
        """The device's last live reading and when it arrived, if any."""
        return self._last_reading.get(device_id)

    def last_seen(self, device_id: str) -> datetime | None:
        session = self._publishers.get(device_id)
        return session.connected_at if session is not None else self._offline_since.get(device_id)
