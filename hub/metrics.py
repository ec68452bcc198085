"""The hub's counters and the one object that owns and exposes them (GET /metrics).

:class:`HubMetrics` is the one owner: it creates every counter of the hub
(the doors', the gatekeeper's, the dashboard feeds', the connection gate's, the
viewer-token guess budget's, the registry of sockets', the writer's and the
cluster link's) and hands each to the part that bumps it, which keeps only a
reference; the parts whose gauges it reads (pending sockets, open sockets,
queues, the writer's health, the link's state) are registered with it; and it
is the one collector in the hub's registry (hub/exposition.py) that turns all
of them into metric families at each scrape. No route collects counters itself.

Counters are plain objects the hot path bumps without awaiting: a plain
``int`` or ``collections.Counter`` bump costs tens of nanoseconds where a
prometheus_client ``Counter.inc()`` takes its lock and costs about twenty
times more (docs/benchmarks.md, "Metrics").
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from prometheus_client.metrics_core import Metric

from hub.batch_writer import WriterCounters
from hub.exposition import MetricType, hub_registry, labelled, multi_labelled, render, single
from hub.guess_budget import GuessBudget, GuessCounts
from hub.limits import Closure, ConnectionGate, GateCounters, Refusal
from telemetry import FrameProblem
from telemetry.health import HealthState

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from hub.cluster.link import ClusterLink
    from hub.device_health import SiteHealth


class Door(enum.StrEnum):
    DEVICE = "device"
    DASHBOARD = "dashboard"


class DropReason(enum.StrEnum):
    """Why a valid reading (or a live frame) did not make it somewhere; a metrics label."""

    QUEUE_FULL = "writer_queue_full"  # BatchWriter.offer refused it: not acked, edge re-sends
    REPLACED = "replaced"  # arrived on a socket the ghost protocol had just replaced
    DASHBOARD_SLOW = "dashboard_slow"  # a dashboard's oldest pending frame, dropped


@dataclass(slots=True)
class HubCounters:
    """Counters the doors bump, and the hub's sweep of revoked tokens (hub/runtime.py)."""

    readings_in: Counter[str] = field(default_factory=Counter)  # label: live | batch
    dropped: Counter[DropReason] = field(default_factory=Counter)
    refused: Counter[tuple[Door, str]] = field(default_factory=Counter)
    revoked_closed: int = 0
    acks_sent: int = 0  # ack frames
    seqs_acked: int = 0  # seqs inside them
    errors_sent: int = 0
    # Connections closed with 1011 because of an unexpected error in the hub, per door.
    internal_errors: Counter[Door] = field(default_factory=Counter)


@dataclass(slots=True)
class FeedCounters:
    """Shared by every dashboard feed (hub/fanout.py)."""

    sent: int = 0
    dropped: int = 0
    closed_too_slow: int = 0


@dataclass(slots=True)
class ClusterCounters:
    """The cluster link's counts (hub/cluster/link.py): ``ems_cluster_*``."""

    redis_errors: int = 0  # times the link went down
    messages_published: int = 0
    frames_forwarded: int = 0
    messages_received: int = 0
    bad_messages: int = 0
    claims: int = 0
    claims_local: int = 0  # made while Redis was down: local epochs
    kicked_by_claim: int = 0  # local sockets closed (1008): their device was claimed elsewhere
    leases_lost: int = 0
    acks_fenced: int = 0  # seqs committed but not acked: their connection had lost its device
    frames_dropped: int = 0  # frames for other hubs: the publish queue was full (routing.py)
    stale_dropped: int = 0  # messages of an owner that had lost the device (mirror.py)


@dataclass(slots=True)
class RegistryCounters:
    """The registry of sockets' counts (hub/connections.py)."""

    replaced: int = 0  # device sockets replaced by a newer one (ghost protocol)


class _Queued(Protocol):
    @property
    def pending(self) -> int: ...


class _Connected(Protocol):
    @property
    def device_id(self) -> str: ...


class RegistryCounts(Protocol):
    """What the metrics read of the registry of sockets (hub/connections.py): gauges."""

    def publishers(self) -> Sequence[_Connected]: ...

    def dashboard_count(self) -> int: ...

    def feeds(self) -> Sequence[_Queued]: ...

    def health(self, device_id: str) -> SiteHealth | None: ...


class _WriterHealth(Protocol):
    @property
    def ready(self) -> bool: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def lag_s(self) -> float: ...


class WriterCounts(Protocol):
    """What the metrics read of the batch writer: its health and its stats (from its counters)."""

    def health(self) -> _WriterHealth: ...

    def stats(self) -> DataclassInstance: ...


class HubMetrics:
    """The one owner of a hub's counters and of their exposition (module docstring).

    Every counter is created here and handed to what bumps it (hub/app.py,
    hub/runtime.py); the parts whose gauges it reads are registered
    (:meth:`attach_parts` when the hub is built, :meth:`attach_writer` and
    :meth:`attach_cluster` once they run). :attr:`registry` collects them all
    at each scrape, and nowhere else does.
    """

    def __init__(self) -> None:
        self.doors = HubCounters()
        self.feeds = FeedCounters()
        self.invalid: Counter[FrameProblem] = Counter()  # bumped by the gatekeeper
        self.gate = GateCounters()  # hub/limits.py
        self.guesses = GuessCounts()  # hub/guess_budget.py
        self.sockets = RegistryCounters()  # hub/connections.py
        self.writer = WriterCounters()  # hub/batch_writer.py
        self.cluster = ClusterCounters()  # hub/cluster/link.py; shown only with a link
        self._gate: ConnectionGate | None = None
        self._guesses: GuessBudget | None = None
        self._connections: RegistryCounts | None = None
        self._writer: WriterCounts | None = None
        self._cluster: ClusterLink | None = None
        self.registry = hub_registry(self.collect)

    def attach_parts(
        self, *, gate: ConnectionGate, guesses: GuessBudget, connections: RegistryCounts
    ) -> None:
        """The parts whose gauges a scrape reads; the hub registers them when it is built."""
        self._gate, self._guesses, self._connections = gate, guesses, connections

    def attach_writer(self, writer: WriterCounts) -> None:
        self._writer = writer

    def attach_cluster(self, link: ClusterLink) -> None:
        self._cluster = link

    def render(self) -> bytes:
        """GET /metrics: the registry in the Prometheus text format."""
        return render(self.registry)

    def collect(self) -> list[Metric]:
        """Every metric family of the hub, from a snapshot of its counters."""
        c, connections, guesses, gate = self.doors, self._connections, self._guesses, self._gate
        if connections is None or guesses is None or gate is None:
            raise RuntimeError("HubMetrics: no hub attached its parts (attach_parts)")
        gauge, counter = MetricType.GAUGE, MetricType.COUNTER
        feeds = connections.feeds()
        families = [
            labelled(
                "ems_connections",
                "Open WebSocket connections per door.",
                gauge,
                "door",
                {
                    Door.DEVICE: len(connections.publishers()),
                    Door.DASHBOARD: connections.dashboard_count(),
                },
            ),
            labelled(
                "ems_readings_in_total",
                "Valid readings received, per path (live or batch).",
                counter,
                "path",
                {"live": c.readings_in["live"], "batch": c.readings_in["batch"]},
            ),
            labelled(
                "ems_invalid_total",
                "Device frames or readings dropped as invalid, per reason.",
                counter,
                "reason",
                {problem.value: self.invalid[problem] for problem in FrameProblem},
            ),
            labelled(
                "ems_dropped_total",
                "Valid readings or live frames dropped, per reason.",
                counter,
                "reason",
                {
                    DropReason.QUEUE_FULL.value: c.dropped[DropReason.QUEUE_FULL],
                    DropReason.REPLACED.value: c.dropped[DropReason.REPLACED],
                    DropReason.DASHBOARD_SLOW.value: self.feeds.dropped,
                },
            ),
            multi_labelled(
                "ems_refused_total",
                "Handshakes refused, per door and reason.",
                counter,
                ("door", "reason"),
                (
                    ((door.value, str(reason)), value)
                    for (door, reason), value in sorted(c.refused.items())
                ),
            ),
            single(
                "ems_viewer_tokens_wrong_total",
                "Wrong viewer tokens offered (sign-in, API, dashboard door).",
                counter,
                self.guesses.wrong,
            ),
            single(
                "ems_viewer_tokens_throttled_total",
                "Viewer tokens refused unread: their address had offered too many wrong ones.",
                counter,
                self.guesses.throttled,
            ),
            single(
                "ems_viewer_guess_addresses",
                "Client addresses with wrong viewer tokens in their current minute.",
                gauge,
                guesses.addresses,
            ),
            single(
                "ems_replaced_total",
                "Device sockets replaced by a newer one (ghost protocol).",
                counter,
                self.sockets.replaced,
            ),
            single(
                "ems_revoked_closed_total",
                "Device sockets closed because their token was revoked.",
                counter,
                c.revoked_closed,
            ),
            single("ems_acks_sent_total", "Ack frames sent to devices.", counter, c.acks_sent),
            single("ems_acked_seqs_total", "Seqs acked to devices.", counter, c.seqs_acked),
            single("ems_errors_sent_total", "Error frames sent.", counter, c.errors_sent),
            labelled(
                "ems_internal_errors_total",
                "Connections closed with 1011 after an unexpected error in the hub, per door.",
                counter,
                "door",
                {door: c.internal_errors[door] for door in Door},
            ),
            single(
                "ems_dashboard_frames_sent_total",
                "Frames sent to dashboards.",
                counter,
                self.feeds.sent,
            ),
            single(
                "ems_dashboards_closed_slow_total",
                "Dashboards closed with 1013 for staying behind.",
                counter,
                self.feeds.closed_too_slow,
            ),
            single(
                "ems_dashboard_queue_depth",
                "Frames waiting in all dashboard queues.",
                gauge,
                sum(feed.pending for feed in feeds),
            ),
            single(
                "ems_dashboard_queue_depth_max",
                "Frames waiting in the fullest dashboard queue.",
                gauge,
                max((feed.pending for feed in feeds), default=0),
            ),
        ]
        families.extend(self._cluster_families())
        families.extend(self._limit_families(gate))
        families.extend(self._writer_families())
        families.extend(self._edge_device_families(connections))
        return families

    @staticmethod
    def _edge_device_families(connections: RegistryCounts) -> list[Metric]:
        """The devices behind connected agents, from their health frames.

        Counts only: /metrics is open (docs/security.md), so no device id or name
        is in it; which site fails is on /api/devices.
        """
        by_state = dict.fromkeys(HealthState, 0)
        failing_sites = 0
        for session in connections.publishers():
            health = connections.health(session.device_id)
            for device in health.devices if health is not None else ():
                by_state[device.state] += 1
            failing_sites += bool(health is not None and health.failing)
        return [
            labelled(
                "ems_edge_devices",
                "Devices behind connected agents, per health state.",
                MetricType.GAUGE,
                "state",
                {state.value: count for state, count in by_state.items()},
            ),
            single(
                "ems_edge_sites_failing",
                "Connected agents with at least one device failing.",
                MetricType.GAUGE,
                failing_sites,
            ),
        ]

    def _cluster_families(self) -> list[Metric]:
        """Several hubs (hub/cluster/link.py); nothing for a hub alone."""
        link = self._cluster
        if link is None:
            return []
        c = self.cluster
        gauge, counter = MetricType.GAUGE, MetricType.COUNTER
        counts = {
            "ems_cluster_redis_errors_total": ("Times the link to Redis was lost.", c.redis_errors),
            "ems_cluster_messages_published_total": (
                "Device messages published for other hubs (each a batch of frames).",
                c.messages_published,
            ),
            "ems_cluster_frames_forwarded_total": (
                "Dashboard frames queued for other hubs.",
                c.frames_forwarded,
            ),
            "ems_cluster_frames_dropped_total": (
                "Frames for other hubs dropped: the publish queue was full.",
                c.frames_dropped,
            ),
            "ems_cluster_messages_received_total": (
                "Pub/sub messages received from Redis.",
                c.messages_received,
            ),
            "ems_cluster_bad_messages_total": (
                "Pub/sub messages dropped as invalid.",
                c.bad_messages,
            ),
            "ems_cluster_stale_messages_total": (
                "Device messages of a hub that had lost the device, dropped.",
                c.stale_dropped,
            ),
            "ems_cluster_claims_total": ("Devices claimed in Redis.", c.claims),
            "ems_cluster_local_claims_total": (
                "Devices registered while Redis was unreachable.",
                c.claims_local,
            ),
            "ems_cluster_superseded_total": (
                "Device sockets closed (1008): their device was claimed at another hub.",
                c.kicked_by_claim,
            ),
            "ems_cluster_leases_lost_total": (
                "Leases found taken by another hub at renewal.",
                c.leases_lost,
            ),
            "ems_cluster_acks_fenced_total": (
                "Seqs committed but not acked: their connection had lost its device.",
                c.acks_fenced,
            ),
        }
        families = [
            single(name, help_text, counter, value) for name, (help_text, value) in counts.items()
        ]
        families += [
            single(
                "ems_cluster_up", "1 when Redis is reachable (0: degraded).", gauge, float(link.up)
            ),
            single(
                "ems_cluster_watched_devices",
                "Devices this hub's dashboards follow through Redis.",
                gauge,
                link.watching(),
            ),
            single(
                "ems_cluster_forwarded_devices",
                "Devices whose frames other hubs asked for.",
                gauge,
                link.forwarding(),
            ),
        ]
        return families

    def _limit_families(self, gate: ConnectionGate) -> list[Metric]:
        """The connection limits (hub/limits.py): pending sockets, refusals, closures."""
        counters = self.gate
        return [
            single(
                "ems_pending_connections",
                "TCP connections that are not a WebSocket (yet): waiting, or being answered.",
                MetricType.GAUGE,
                gate.pending,
            ),
            labelled(
                "ems_connections_refused_total",
                "Connections refused at a cap (503 on connect, or 1013), per reason.",
                MetricType.COUNTER,
                "reason",
                {refusal.value: counters.refused[refusal] for refusal in Refusal},
            ),
            labelled(
                "ems_connections_closed_total",
                "Connections the hub closed for idling, per reason.",
                MetricType.COUNTER,
                "reason",
                {closure.value: counters.closed[closure] for closure in Closure},
            ),
        ]

    def _writer_families(self) -> list[Metric]:
        """The batch writer's health and stats; nothing before it runs."""
        writer = self._writer
        if writer is None:
            return []
        health = writer.health()
        families = [
            single(
                "ems_writer_ready",
                "1 when the writer keeps up.",
                MetricType.GAUGE,
                float(health.ready),
            ),
            single(
                "ems_writer_queue_depth",
                "Readings waiting for the writer.",
                MetricType.GAUGE,
                health.queue_depth,
            ),
            single(
                "ems_writer_lag_seconds",
                "Age of the oldest uncommitted reading.",
                MetricType.GAUGE,
                health.lag_s,
            ),
        ]
        for name, value in sorted(dataclasses.asdict(writer.stats()).items()):
            if name == "queue_depth":
                continue  # already above, from health()
            if isinstance(value, int | float) and not isinstance(value, bool):
                kind = MetricType.COUNTER if name.endswith("_total") else MetricType.GAUGE
                families.append(single(f"ems_writer_{name}", f"Batch writer: {name}.", kind, value))
        return families
