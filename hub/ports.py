"""The narrow interfaces the doors and routes get from the running hub.

``Hub`` (hub/runtime.py) keeps its parts private: the registry of sockets, the
writer, the tokens, the cluster link, the MQTT bridge, the counters. Each
consumer gets one small object holding only what it needs, built when the hub
starts and put on ``app.state`` by hub/app.py:

- :class:`DevicePort` for the device door (hub/device_door.py): verify a token,
  refuse a handshake, register and unregister a device under the ghost
  protocol (hub/connections.py), offer a reading to the writer, fan a live one
  out, keep a site's health, count what it drops;
- :class:`DashboardPort` for the dashboard door (hub/dashboard_door.py): the
  viewer check, the dashboard caps, a feed and its subscription;
- :class:`HubReader` for the API, the energy routes and the dashboard pages:
  read-only views of storage, of who is connected and of the hub's health.

The viewer check they share is ``ViewerPolicy`` (hub/viewer_access.py).
Nothing here awaits on the hot path: :meth:`DevicePort.publish` and
:meth:`DevicePort.offer` queue, as the door always did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import WebSocket

from hub.batch_writer import AckSink, BatchWriter, WriterHealth
from hub.connections import ConnectionManager, PublisherSession, Registration
from hub.device_health import SiteHealth, site_health
from hub.device_replies import DeviceReplies
from hub.fanout import DashboardFeed, FeedPolicy
from hub.gatekeeper import Gatekeeper, LogLimiter
from hub.limits import AddressCounts, ConnectionGate, Refusal
from hub.metrics import Door, HubCounters, HubMetrics
from hub.refusals import log_refusal, refuse_handshake
from hub.site_zones import SiteZones
from hub.sockets import buffered_bytes_probe
from hub.storage.base import DeviceRecord, Storage, StoredReading
from hub.storage.energy import EnergySums
from telemetry import Reading, Rejected
from telemetry.health import HealthFrame

if TYPE_CHECKING:
    from hub.cluster.link import ClusterLink
    from hub.mqtt_bridge import HubMqtt


class StoredData(Protocol):
    """What the API may ask of storage: reads only (hub/storage/base.py)."""

    async def check(self) -> None: ...

    async def devices(self) -> list[DeviceRecord]: ...

    async def readings(
        self,
        device_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        *,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]: ...

    async def buckets(
        self, device_id: str, start: datetime, end: datetime, bucket: timedelta
    ) -> list[dict[str, Any]]: ...

    async def energy(
        self, device_id: str, edges: Sequence[datetime]
    ) -> list[EnergySums | None]: ...

    async def device_timezone(self, device_id: str) -> str | None: ...


class DevicePort:
    """Everything the device door may do with the hub (module docstring)."""

    def __init__(
        self,
        *,
        verify: Callable[[str, str | None], Awaitable[str]],
        connections: ConnectionManager,
        writer: BatchWriter,
        metrics: HubMetrics,
        gatekeeper: Gatekeeper,
        refusal_log: LogLimiter,
        site_zones: SiteZones,
        storage: Storage,
        cluster: ClusterLink | None,
        mqtt: HubMqtt | None,
    ) -> None:
        self._verify = verify
        self._connections = connections
        self._writer = writer
        self._gatekeeper = gatekeeper
        self._refusal_log = refusal_log
        self._site_zones = site_zones
        self._storage = storage
        self._cluster = cluster
        self._mqtt = mqtt
        # Bumped by the door itself on its hot path (readings in, drops, 1011s).
        self.counters: HubCounters = metrics.doors

    async def verify(self, device_id: str, token: str | None) -> str:
        """The matching token hash; raises ``AuthError`` (hub/auth.py) otherwise."""
        return await self._verify(device_id, token)

    async def refuse(self, websocket: WebSocket, reason: str, detail: str) -> None:
        """Count, log within budget and refuse a handshake (hub/refusals.py)."""
        await refuse_handshake(
            websocket,
            counters=self.counters,
            limiter=self._refusal_log,
            door=Door.DEVICE,
            reason=reason,
            detail=detail,
        )

    def replies(self, websocket: WebSocket, device_id: str) -> DeviceReplies:
        """The acks and errors of one new connection (hub/device_replies.py)."""
        return DeviceReplies(websocket, device_id, self.counters)

    async def register(self, session: PublisherSession) -> Registration:
        """Register the session under the ghost protocol; with several hubs, claim first.

        The claim is the device's next epoch, which closes older sockets wherever
        they are (hub/cluster/lease.py); its fence keeps a lost device's acks back.
        """
        if self._cluster is not None:
            claim = await self._cluster.claim(session.device_id)
            session.epoch, session.lease_until, session.claimed = (
                claim.epoch,
                claim.lease_until,
                claim.claimed,
            )
            session.replies.fence = self._cluster.fence_for(session)
        registration = await self._connections.connect_publisher(session)
        if registration is Registration.REGISTERED and self._mqtt is not None:
            self._mqtt.presence(session.device_id, True)
        return registration

    async def unregister(self, session: PublisherSession) -> bool:
        """Identity-checked unregistration; whether the session was still the device's."""
        still_registered = await self._connections.disconnect_publisher(session)
        if still_registered and self._mqtt is not None:
            self._mqtt.presence(session.device_id, False)
        return still_registered

    def reject(self, device_id: str, rejected: Rejected, now: float) -> None:
        """Count and log (within budget) a bad frame or reading (hub/gatekeeper.py)."""
        self._gatekeeper.reject(device_id, rejected, now)

    async def keep_health(self, device_id: str, frame: HealthFrame, now: datetime) -> None:
        """Keep the agent's health for dashboards, the API and MQTT; store its time zone."""
        health = site_health(frame, now)
        self._connections.set_health(device_id, health)
        if self._mqtt is not None:  # queues only (hub/mqtt_bridge.py)
            self._mqtt.health(device_id, health)
        if frame.timezone is not None:
            await self._site_zones.remember(self._storage, device_id, frame.timezone, now)

    def watched(self, device_id: str) -> bool:
        """Whether a dashboard (here or at another hub) watches the device."""
        return self._connections.watched(device_id)

    def history_stored(self, device_id: str, start: datetime, end: datetime) -> None:
        """Tell the device's dashboards that readings between ``start`` and ``end`` are stored."""
        self._connections.history_stored(device_id, start, end)

    def publish(self, device_id: str, reading: Reading, now: datetime) -> None:
        """The hot path: a live reading to its dashboards and, when on, to MQTT. Never awaits."""
        self._connections.publish(device_id, reading, now)
        if self._mqtt is not None:  # queues only (hub/mqtt_bridge.py)
            self._mqtt.reading(device_id, reading)

    def offer(self, row: StoredReading, sink: AckSink | None) -> bool:
        """The cold path: queue a row for the writer; False when its queue is full."""
        return self._writer.offer(row, sink)


class DashboardPort:
    """Everything the dashboard door may do with the hub (module docstring)."""

    def __init__(
        self,
        *,
        connections: ConnectionManager,
        metrics: HubMetrics,
        refusal_log: LogLimiter,
        dashboards: AddressCounts,
        gate: ConnectionGate,
        policy: FeedPolicy,
    ) -> None:
        self._connections = connections
        self._counters = metrics.doors
        self._feed_counters = metrics.feeds
        self._refusal_log = refusal_log
        self._dashboards = dashboards
        self._gate = gate
        self._policy = policy

    async def refuse(self, websocket: WebSocket, reason: str, detail: str) -> None:
        """Count, log within budget and refuse a handshake (hub/refusals.py)."""
        await refuse_handshake(
            websocket,
            counters=self._counters,
            limiter=self._refusal_log,
            door=Door.DASHBOARD,
            reason=reason,
            detail=detail,
        )

    def admit(self, address: str) -> Refusal | None:
        """Take a place under the dashboard caps (hub/limits.py), or say which cap is full.

        A refusal is counted and logged within budget here.
        """
        refusal = self._dashboards.try_add(address)
        if refusal is not None:
            self._gate.counters.refused[refusal] += 1
            log_refusal(self._refusal_log, "dashboard door", address, f"{refusal} (1013)")
        return refusal

    def leave(self, address: str) -> None:
        """Give back the place :meth:`admit` took."""
        self._dashboards.remove(address)

    def feed(self, websocket: WebSocket, device_id: str) -> DashboardFeed:
        """A new dashboard connection's queue and sender (hub/fanout.py)."""
        return DashboardFeed(
            websocket,
            device_id,
            self._policy,
            self._feed_counters,
            transport_buffered=buffered_bytes_probe(websocket),
        )

    def subscribe(self, device_id: str, feed: DashboardFeed) -> AbstractAsyncContextManager[None]:
        """The feed registered for the device's frames while the context lasts."""
        return self._connections.subscribe(device_id, feed)


@dataclass(frozen=True, slots=True)
class HubReader:
    """Read-only views for the API and the pages: storage, the registry, the hub's health."""

    stored: StoredData
    _connections: ConnectionManager
    _writer: BatchWriter
    _online: Callable[[list[str]], Awaitable[set[str]]]
    _degraded: Callable[[], str | None]

    @property
    def closing(self) -> bool:
        """Whether the hub is stopping (no new sockets)."""
        return self._connections.closing

    def writer_health(self) -> WriterHealth:
        return self._writer.health()

    def degraded(self) -> str | None:
        """Why the hub serves only its own devices and dashboards now; None when it does not."""
        return self._degraded()

    async def online(self, device_ids: list[str]) -> set[str]:
        """Which of these devices are connected: at any hub of the cluster, or here."""
        return await self._online(device_ids)

    def connected(self) -> list[str]:
        """The ids of the devices connected to this hub."""
        return [session.device_id for session in self._connections.publishers()]

    def is_online(self, device_id: str) -> bool:
        """Whether the device is connected to this hub."""
        return self._connections.is_online(device_id)

    def last_reading(self, device_id: str) -> tuple[Reading, datetime] | None:
        """The device's last live reading this hub process saw, and when."""
        return self._connections.last_reading(device_id)

    def health(self, device_id: str) -> SiteHealth | None:
        """The agent's last health frame to this hub process (docs/protocol.md)."""
        return self._connections.health(device_id)
