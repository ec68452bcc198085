"""The hub's HTTP API (docs/protocol.md, "Devices over HTTP", "Stored readings over HTTP").

``/healthz`` and ``/readyz`` for orchestration, ``/api/devices`` and the stored
readings (raw or bucketed) for dashboards and scripts, ``/metrics`` for
Prometheus. The ``/api/`` routes ask for what the dashboard door asks for (a
viewer token when the hub has one, a same-origin browser; hub/viewer_access.py):
they serve the same data. Bad parameters answer 422 naming the parameter
(hub/query.py); storage being down answers 503 "storage unavailable", its reason
logged, never sent (it may name a host or echo SQL); anything unexpected is a
generic 500 (hub/errors.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from hub.limits import Closure, Refusal
from hub.metrics import (
    CONTENT_TYPE,
    Door,
    DropReason,
    MetricType,
    hub_registry,
    labelled,
    multi_labelled,
    render,
    single,
)
from hub.query import (
    READINGS_PARAMETERS,
    Order,
    QueryError,
    check_parameters,
    format_bucket,
    parse_readings_query,
)
from hub.runtime import Hub
from hub.storage.base import StorageError
from hub.viewer_access import require_viewer
from telemetry import FrameProblem, format_ts, is_valid_device_id
from telemetry.health import HealthState

logger = logging.getLogger(__name__)

READY_CHECK_TIMEOUT_S = 2.0


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


router = APIRouter()
data_router = APIRouter(prefix="/api", dependencies=[Depends(require_viewer)])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    hub = hub_of(request)
    reason = await _not_ready_reason(hub)
    if reason is not None:
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
    degraded = hub.degraded()
    if degraded is not None:
        # Still ready: it serves its own devices and dashboards (docs/architecture.md,
        # "Several hubs"); a load balancer should keep sending it traffic.
        return JSONResponse({"status": "degraded", "reason": degraded})
    return JSONResponse({"status": "ready"})


async def _not_ready_reason(hub: Hub) -> str | None:
    if hub.manager.closing:
        return "shutting down"
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await hub.storage.check()
    except TimeoutError:
        return f"storage did not answer within {READY_CHECK_TIMEOUT_S:.0f} s"
    except StorageError as err:
        logger.warning("readiness check: storage unreachable: %s", err)
        return "storage unreachable"
    health = hub.writer.health()
    if not health.ready:
        return health.reason or "writer not ready"
    return None


@data_router.get("/devices")
async def devices(request: Request) -> list[dict[str, Any]]:
    hub = hub_of(request)
    try:
        records = await hub.storage.devices()
    except StorageError as err:
        raise storage_unavailable("listing devices", err) from err
    known = {record.device_id: record for record in records}
    ids = sorted(set(known) | {s.device_id for s in hub.manager.publishers()})
    # With several hubs: connected at any of them (hub/runtime.py).
    online = await hub.online(ids)
    answer: list[dict[str, Any]] = []
    for device_id in ids:
        record = known.get(device_id)
        last_reading: Mapping[str, Any] | None = record.last_reading if record else None
        last_seen = record.last_seen if record else None
        live = hub.manager.last_reading(device_id)
        if live is not None and (last_seen is None or live[0].ts >= last_seen):
            last_seen, last_reading = live[0].ts, live[0].to_wire()
        health = hub.manager.health(device_id)
        answer.append(
            {
                "device_id": device_id,
                "online": device_id in online,
                "last_seen": format_ts(last_seen) if last_seen is not None else None,
                "last_reading": last_reading,
                # The agent's devices (docs/protocol.md, "Device health"); None before
                # its first health frame to this hub process.
                "health": health.to_json() if health is not None else None,
            }
        )
    return answer


@data_router.get("/devices/{device_id}/readings")
async def readings(
    request: Request,
    device_id: str,
    start: Annotated[str | None, Query(description="RFC 3339; default end - 1 h")] = None,
    end: Annotated[str | None, Query(description="RFC 3339; default now")] = None,
    limit: Annotated[str | None, Query(description="1..10000, default 1000")] = None,
    bucket: Annotated[str | None, Query(description="e.g. 60s, 5m, 1h")] = None,
    order: Annotated[str | None, Query(description="asc (default) or desc")] = None,
) -> dict[str, Any]:
    hub = hub_of(request)
    if not is_valid_device_id(device_id):
        raise HTTPException(status_code=400, detail="device_id: 1 to 64 of A-Z a-z 0-9 _ - .")
    try:
        check_parameters(request.query_params.keys(), READINGS_PARAMETERS)
        query = parse_readings_query(
            start=start, end=end, limit=limit, bucket=bucket, order=order, now=datetime.now(UTC)
        )
    except QueryError as err:
        raise HTTPException(status_code=422, detail=str(err)) from err
    try:
        if query.bucket is not None:
            rows = await hub.storage.buckets(device_id, query.start, query.end, query.bucket)
            if query.order is Order.DESC:
                rows.reverse()
            return {"device_id": device_id, "bucket": format_bucket(query.bucket), "buckets": rows}
        rows = await hub.storage.readings(
            device_id, query.start, query.end, query.limit, newest_first=query.newest
        )
        if query.newest != (query.order is Order.DESC):
            rows.reverse()
    except StorageError as err:
        raise storage_unavailable("reading readings", err) from err
    return {"device_id": device_id, "readings": rows}


def storage_unavailable(what: str, err: StorageError) -> HTTPException:
    """The 503 of a storage failure: its reason goes to the log, not to the client."""
    logger.warning("%s: storage unavailable: %s", what, err)
    return HTTPException(status_code=503, detail="storage unavailable")


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(render(registry), media_type=CONTENT_TYPE)


def metrics_registry(hub: Hub) -> CollectorRegistry:
    """The hub's registry (hub/metrics.py): :func:`collect` at every scrape."""
    return hub_registry(lambda: collect(hub))


def collect(hub: Hub) -> list[Metric]:
    """Every metric family of the hub, from a snapshot of its counters."""
    c = hub.counters
    gauge, counter = MetricType.GAUGE, MetricType.COUNTER
    families = [
        labelled(
            "ems_connections",
            "Open WebSocket connections per door.",
            gauge,
            "door",
            {
                Door.DEVICE: len(hub.manager.publishers()),
                Door.DASHBOARD: hub.manager.dashboard_count(),
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
            {problem.value: hub.gatekeeper.counts[problem] for problem in FrameProblem},
        ),
        labelled(
            "ems_dropped_total",
            "Valid readings or live frames dropped, per reason.",
            counter,
            "reason",
            {
                "writer_queue_full": c.dropped[DropReason.QUEUE_FULL],
                "replaced": c.dropped[DropReason.REPLACED],
                "dashboard_slow": hub.feed_counters.dropped,
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
            hub.viewer_guesses.wrong,
        ),
        single(
            "ems_viewer_tokens_throttled_total",
            "Viewer tokens refused unread: their address had offered too many wrong ones.",
            counter,
            hub.viewer_guesses.throttled,
        ),
        single(
            "ems_viewer_guess_addresses",
            "Client addresses with wrong viewer tokens in their current minute.",
            MetricType.GAUGE,
            hub.viewer_guesses.addresses,
        ),
        single(
            "ems_replaced_total",
            "Device sockets replaced by a newer one (ghost protocol).",
            counter,
            hub.manager.replaced_count,
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
            hub.feed_counters.sent,
        ),
        single(
            "ems_dashboards_closed_slow_total",
            "Dashboards closed with 1013 for staying behind.",
            counter,
            hub.feed_counters.closed_too_slow,
        ),
        single(
            "ems_dashboard_queue_depth",
            "Frames waiting in all dashboard queues.",
            gauge,
            sum(feed.pending for feed in hub.manager.feeds()),
        ),
        single(
            "ems_dashboard_queue_depth_max",
            "Frames waiting in the fullest dashboard queue.",
            gauge,
            max((feed.pending for feed in hub.manager.feeds()), default=0),
        ),
    ]
    families.extend(_cluster_families(hub))
    families.extend(_limit_families(hub))
    families.extend(_writer_families(hub))
    families.extend(_edge_device_families(hub))
    return families


def _edge_device_families(hub: Hub) -> list[Metric]:
    """The devices behind connected agents, from their health frames.

    Counts only: /metrics is open (docs/security.md), so no device id or name
    is in it; which site fails is on /api/devices.
    """
    by_state = dict.fromkeys(HealthState, 0)
    failing_sites = 0
    for session in hub.manager.publishers():
        health = hub.manager.health(session.device_id)
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


def _cluster_families(hub: Hub) -> list[Metric]:
    """Several hubs (hub/cluster/link.py); nothing for a hub alone."""
    link = hub.cluster
    if link is None:
        return []
    c = link.counters
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
            link.batcher.dropped,
        ),
        "ems_cluster_messages_received_total": (
            "Pub/sub messages received from Redis.",
            c.messages_received,
        ),
        "ems_cluster_bad_messages_total": ("Pub/sub messages dropped as invalid.", c.bad_messages),
        "ems_cluster_stale_messages_total": (
            "Device messages of a hub that had lost the device, dropped.",
            link.mirror.stale_dropped,
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
        single("ems_cluster_up", "1 when Redis is reachable (0: degraded).", gauge, float(link.up)),
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


def _limit_families(hub: Hub) -> list[Metric]:
    """The connection limits (hub/limits.py): pending sockets, refusals, closures."""
    counters = hub.gate.counters
    return [
        single(
            "ems_pending_connections",
            "TCP connections that are not a WebSocket (yet): waiting, or being answered.",
            MetricType.GAUGE,
            hub.gate.pending,
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


def _writer_families(hub: Hub) -> list[Metric]:
    health = hub.writer.health()
    families = [
        single(
            "ems_writer_ready", "1 when the writer keeps up.", MetricType.GAUGE, float(health.ready)
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
    stats = hub.writer.stats()
    values = dataclasses.asdict(stats) if dataclasses.is_dataclass(stats) else dict(stats)
    for name, value in sorted(values.items()):
        if name == "queue_depth":
            continue  # already above, from health()
        if isinstance(value, int | float) and not isinstance(value, bool):
            kind = MetricType.COUNTER if name.endswith("_total") else MetricType.GAUGE
            families.append(single(f"ems_writer_{name}", f"Batch writer: {name}.", kind, value))
    return families
