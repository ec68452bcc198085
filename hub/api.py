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
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from hub.exposition import CONTENT_TYPE
from hub.metrics import HubMetrics
from hub.ports import HubReader
from hub.query import (
    READINGS_PARAMETERS,
    Order,
    QueryError,
    check_parameters,
    format_bucket,
    parse_readings_query,
)
from hub.storage.base import StorageError
from hub.viewer_access import require_viewer
from telemetry import format_ts, is_valid_device_id

logger = logging.getLogger(__name__)

READY_CHECK_TIMEOUT_S = 2.0


def reader_of(request: Request) -> HubReader:
    """The running hub's read-only views (hub/ports.py): all the API may see of it."""
    reader: HubReader = request.app.state.reader
    return reader


router = APIRouter()
data_router = APIRouter(prefix="/api", dependencies=[Depends(require_viewer)])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    reader = reader_of(request)
    reason = await _not_ready_reason(reader)
    if reason is not None:
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
    degraded = reader.degraded()
    if degraded is not None:
        # Still ready: it serves its own devices and dashboards (docs/architecture.md,
        # "Several hubs"); a load balancer should keep sending it traffic.
        return JSONResponse({"status": "degraded", "reason": degraded})
    return JSONResponse({"status": "ready"})


async def _not_ready_reason(reader: HubReader) -> str | None:
    if reader.closing:
        return "shutting down"
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await reader.stored.check()
    except TimeoutError:
        return f"storage did not answer within {READY_CHECK_TIMEOUT_S:.0f} s"
    except StorageError as err:
        logger.warning("readiness check: storage unreachable: %s", err)
        return "storage unreachable"
    health = reader.writer_health()
    if not health.ready:
        return health.reason or "writer not ready"
    return None


@data_router.get("/devices")
async def devices(request: Request) -> list[dict[str, Any]]:
    reader = reader_of(request)
    try:
        records = await reader.stored.devices()
    except StorageError as err:
        raise storage_unavailable("listing devices", err) from err
    known = {record.device_id: record for record in records}
    ids = sorted(set(known) | set(reader.connected()))
    # With several hubs: connected at any of them (hub/runtime.py).
    online = await reader.online(ids)
    answer: list[dict[str, Any]] = []
    for device_id in ids:
        record = known.get(device_id)
        last_reading: Mapping[str, Any] | None = record.last_reading if record else None
        last_seen = record.last_seen if record else None
        live = reader.last_reading(device_id)
        if live is not None and (last_seen is None or live[0].ts >= last_seen):
            last_seen, last_reading = live[0].ts, live[0].to_wire()
        health = reader.health(device_id)
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
    stored = reader_of(request).stored
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
            rows = await stored.buckets(device_id, query.start, query.end, query.bucket)
            if query.order is Order.DESC:
                rows.reverse()
            return {"device_id": device_id, "bucket": format_bucket(query.bucket), "buckets": rows}
        rows = await stored.readings(
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
    hub_metrics: HubMetrics = request.app.state.metrics
    return Response(hub_metrics.render(), media_type=CONTENT_TYPE)
