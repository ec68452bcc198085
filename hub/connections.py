"""Who is connected: the registry of publishers (devices) and subscribers (dashboards).

Follows docs/protocol.md ("Doors": the ghost protocol):

- one ``asyncio.Lock`` serialises connect and disconnect, so "is an old socket
  registered? replace it" is a single atomic step;
- a new authenticated publisher for a device id marks the old session
  ``replaced``, closes its outbox and takes its place under the lock; the old
  socket is then closed with 1008, which ends its pending ``receive()`` at once,
  and its loop drops anything it still reads (``PublisherSession.replaced``);
- disconnect is identity-checked: a kicked socket's late disconnect never
  removes its successor;
- publishers are never sent data (only acks and errors, by their own outbox).

``publish`` is the hot path: synchronous, one JSON encoding per reading, then
``DashboardFeed.offer`` per dashboard, which never awaits a socket. Agents'
health frames and notices of stored history (hub/device_health.py) reach
dashboards the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hub.device_health import SiteHealth, health_frame, history_frame
from hub.device_outbox import DeviceOutbox
from hub.fanout import DashboardFeed
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


@dataclass(eq=False, slots=True)
class PublisherSession:
    """One authenticated device connection."""

    device_id: str
    socket: SocketLike
    token_hash: str
    outbox: DeviceOutbox
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


class ConnectionManager:
    """The registry of publishers and subscribers, and the live fan-out."""

    def __init__(self) -> None:
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
        self.replaced_count = 0
        self.closing = False  # set when the hub stops: no new registrations

    # -- publishers -------------------------------------------------------------

    async def connect_publisher(self, session: PublisherSession) -> bool:
        """Register ``session``; an older one for the device is kicked with 1008.

        False when the hub is stopping (the caller closes with 1001).
        """
        async with self.lock:
            if self.closing:
                self._end(session, CloseCode.GOING_AWAY)
                return False
            old = self._publishers.get(session.device_id)
            if old is not None:
                self._end(old, CloseCode.POLICY_VIOLATION)
                self.replaced_count += 1
            self._publishers[session.device_id] = session
            self._offline_since.pop(session.device_id, None)
            self._broadcast(session.device_id, self._status_frame(session.device_id))
        if old is not None:
            logger.info("device %s: a newer connection replaced the old one", session.device_id)
            await close_quietly(old.socket, CloseCode.POLICY_VIOLATION, within=KICK_TIMEOUT_S)
        return True

    async def disconnect_publisher(self, session: PublisherSession) -> bool:
        """Unregister ``session`` if (and only if) it is still the registered one."""
        async with self.lock:
            session.outbox.close()
            if self._publishers.get(session.device_id) is not session:
                return False  # a kicked socket's late disconnect: its successor stays
            del self._publishers[session.device_id]
            session.ended = True
            self._offline_since[session.device_id] = datetime.now(UTC)
            self._broadcast(session.device_id, self._status_frame(session.device_id))
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
                    self._offline_since[session.device_id] = datetime.now(UTC)
                    self._broadcast(session.device_id, self._status_frame(session.device_id))
                if not session.ended:
                    self._end(session, code)
                    kicked.append(session)
        await asyncio.gather(
            *(close_quietly(s.socket, code, within=KICK_TIMEOUT_S, reason=reason) for s in kicked)
        )
        return len(kicked)

    @staticmethod
    def _end(session: PublisherSession, code: CloseCode) -> None:
        session.ended = True
        session.close_code = code
        session.outbox.close()

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
        async with self.lock:
            if self.closing:
                feed.request_close(CloseCode.GOING_AWAY)
            self._subscribers.setdefault(device_id, set()).add(feed)
            feed.offer(self._status_frame(device_id))
            health = self._health.get(device_id)
            if health is not None:
                feed.offer(health_frame(device_id, health))
            last = self._last_reading.get(device_id)
            if last is not None:
                feed.offer(self._reading_frame(device_id, *last))
        try:
            yield
        finally:
            feeds = self._subscribers.get(device_id)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._subscribers[device_id]

    def feeds(self) -> list[DashboardFeed]:
        return [feed for feeds in self._subscribers.values() for feed in feeds]

    def dashboard_count(self) -> int:
        return sum(len(feeds) for feeds in self._subscribers.values())

    # -- hot path ---------------------------------------------------------------

    def publish(self, device_id: str, reading: Reading, received_at: datetime) -> None:
        """Push a live reading to the device's dashboards now; never awaits."""
        self._last_reading[device_id] = (reading, received_at)
        feeds = self._subscribers.get(device_id)
        if feeds:
            frame = self._reading_frame(device_id, reading, received_at)
            for feed in feeds:
                feed.offer(frame)

    def set_health(self, device_id: str, health: SiteHealth) -> None:
        """An agent's new health frame: keep it, push it to the device's dashboards."""
        self._health[device_id] = health
        if self._subscribers.get(device_id):
            self._broadcast(device_id, health_frame(device_id, health))

    def health(self, device_id: str) -> SiteHealth | None:
        return self._health.get(device_id)

    def watched(self, device_id: str) -> bool:
        """Whether a dashboard is subscribed to the device now."""
        return bool(self._subscribers.get(device_id))

    def history_stored(self, device_id: str, start: datetime, end: datetime) -> None:
        """Readings of a batch in ``[start, end]`` were committed: dashboards may fetch them."""
        if self._subscribers.get(device_id):
            self._broadcast(device_id, history_frame(device_id, start, end))

    @staticmethod
    def _reading_frame(device_id: str, reading: Reading, received_at: datetime) -> str:
        return reading_frame(device_id, reading, received_at)

    def _broadcast(self, device_id: str, frame: str) -> None:
        for feed in self._subscribers.get(device_id, ()):
            feed.offer(frame)

    def _status_frame(self, device_id: str) -> str:
        session = self._publishers.get(device_id)
        since: datetime | None
        if session is not None:
            online, since = True, session.connected_at
        else:
            online, since = False, self._offline_since.get(device_id)
        return json.dumps(
            {
                "type": "status",
                "device_id": device_id,
                "online": online,
                "since": format_ts(since) if since is not None else None,
            },
            separators=(",", ":"),
        )

    def last_reading(self, device_id: str) -> tuple[Reading, datetime] | None:
        """The device's last live reading and when it arrived, if any."""
        return self._last_reading.get(device_id)

    def last_seen(self, device_id: str) -> datetime | None:
        session = self._publishers.get(device_id)
        return session.connected_at if session is not None else self._offline_since.get(device_id)
