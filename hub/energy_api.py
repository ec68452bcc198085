"""Energy and CSV over HTTP (docs/protocol.md, "Energy over HTTP").

``GET /api/devices/{id}/energy`` (JSON), ``.../energy.csv`` (the same intervals
as a file) and ``.../readings.csv`` (stored readings, streamed page by page).
The viewer-token rules, the 422 for a bad or unknown parameter and the 503 for
a storage failure are those of the other ``/api`` routes (hub/api.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from hub.api import reader_of, storage_unavailable
from hub.csv_export import (
    ENERGY_CSV_COLUMNS,
    MEDIA_TYPE,
    READING_CSV_COLUMNS,
    attachment,
    csv_text,
    energy_rows,
    reading_cells,
)
from hub.energy_query import (
    ENERGY_PARAMETERS,
    EnergyQuery,
    energy_answer,
    intervals,
    parse_energy_query,
    parse_range,
)
from hub.ports import StoredData
from hub.query import QueryError, check_parameters
from hub.storage.base import StorageError
from hub.storage.energy import EnergySums
from hub.viewer_access import require_viewer
from telemetry import is_valid_device_id

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", dependencies=[Depends(require_viewer)])

READINGS_CSV_PARAMETERS: Final = frozenset({"start", "end", "tz", "token"})
# Readings per storage query while streaming: a page is about 2 MB of CSV.
CSV_PAGE: Final = 5000
# At most a year of readings per file (31.6 million rows at 1 Hz, several GB).
MAX_CSV_SPAN: Final = timedelta(days=366)

StartParam = Annotated[
    str | None, Query(description="RFC 3339, or a local date: 2026-12-03, 2026-12, 2026")
]
EndParam = Annotated[str | None, Query(description="RFC 3339, or a local date (its end)")]
PeriodParam = Annotated[str | None, Query(description="hour (default), day, month or year")]
TzParam = Annotated[str | None, Query(description="IANA zone; default the device's, else UTC")]


def _check_device(device_id: str) -> None:
    if not is_valid_device_id(device_id):
        raise HTTPException(status_code=400, detail="device_id: 1 to 64 of A-Z a-z 0-9 _ - .")


async def _query(
    stored: StoredData,
    request: Request,
    device_id: str,
    allowed: frozenset[str],
    **params: str | None,
) -> EnergyQuery:
    try:
        check_parameters(request.query_params.keys(), allowed)
        stored_zone = None
        if params.get("tz") is None:
            stored_zone = await stored.device_timezone(device_id)
        return parse_energy_query(stored_zone=stored_zone, now=datetime.now(UTC), **params)
    except QueryError as err:
        raise HTTPException(status_code=422, detail=str(err)) from err
    except StorageError as err:
        raise storage_unavailable("reading a device's time zone", err) from err


async def _energy(
    stored: StoredData, device_id: str, query: EnergyQuery
) -> list[EnergySums | None]:
    try:
        return await stored.energy(device_id, query.edges)
    except StorageError as err:
        raise storage_unavailable("adding up energy", err) from err


@router.get("/devices/{device_id}/energy")
async def energy(
    request: Request,
    device_id: str,
    start: StartParam = None,
    end: EndParam = None,
    period: PeriodParam = None,
    tz: TzParam = None,
) -> dict[str, Any]:
    _check_device(device_id)
    stored = reader_of(request).stored
    query = await _query(
        stored, request, device_id, ENERGY_PARAMETERS, start=start, end=end, period=period, tz=tz
    )
    return energy_answer(device_id, query, await _energy(stored, device_id, query))


def _local_text(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).strftime("%Y%m%dT%H%M")


def _day_text(query: EnergyQuery, index: int) -> str:
    return _local_text(query.edges[index], query.zone)


@router.get("/devices/{device_id}/energy.csv")
async def energy_csv(
    request: Request,
    device_id: str,
    start: StartParam = None,
    end: EndParam = None,
    period: PeriodParam = None,
    tz: TzParam = None,
) -> StreamingResponse:
    _check_device(device_id)
    stored = reader_of(request).stored
    query = await _query(
        stored, request, device_id, ENERGY_PARAMETERS, start=start, end=end, period=period, tz=tz
    )
    sums = await _energy(stored, device_id, query)
    text = csv_text([ENERGY_CSV_COLUMNS, *energy_rows(intervals(query, sums))])
    span = f"{_day_text(query, 0)}-{_day_text(query, -1)}"
    name = f"{device_id}-energy-{query.period.value}-{span}.csv"
    return StreamingResponse(
        iter([text]), media_type=MEDIA_TYPE, headers={"Content-Disposition": attachment(name)}
    )


@router.get("/devices/{device_id}/readings.csv")
async def readings_csv(
    request: Request,
    device_id: str,
    start: StartParam = None,
    end: EndParam = None,
    tz: TzParam = None,
) -> StreamingResponse:
    """Stored readings with ``start <= ts < end`` (the same forms as the energy route's)."""
    _check_device(device_id)
    stored = reader_of(request).stored
    try:
        check_parameters(request.query_params.keys(), READINGS_CSV_PARAMETERS)
        stored_zone = await stored.device_timezone(device_id) if tz is None else None
        asked = parse_range(
            start=start, end=end, tz=tz, stored_zone=stored_zone, now=datetime.now(UTC)
        )
    except QueryError as err:
        raise HTTPException(status_code=422, detail=str(err)) from err
    except StorageError as err:
        raise storage_unavailable("reading a device's time zone", err) from err
    if asked.end - asked.start > MAX_CSV_SPAN:
        raise HTTPException(status_code=422, detail="end: at most 366 days of readings per file")
    try:
        first = await stored.readings(device_id, asked.start, asked.end, CSV_PAGE)
    except StorageError as err:
        raise storage_unavailable("reading readings", err) from err
    span = f"{_local_text(asked.start, asked.zone)}-{_local_text(asked.end, asked.zone)}"
    return StreamingResponse(
        _reading_pages(stored, device_id, first, asked.end),
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": attachment(f"{device_id}-readings-{span}.csv")},
    )


async def _reading_pages(
    stored: StoredData, device_id: str, page: list[dict[str, Any]], finish: datetime
) -> AsyncIterator[str]:
    """The header, then page after page; a storage failure mid-file ends the response
    unfinished (the client sees a broken transfer, never a short file that looks whole)."""
    yield csv_text([READING_CSV_COLUMNS])
    while page:
        yield csv_text([reading_cells(wire) for wire in page])
        if len(page) < CSV_PAGE:
            return
        after = datetime.fromisoformat(page[-1]["ts"]) + timedelta(microseconds=1)
        try:
            page = await stored.readings(device_id, after, finish, CSV_PAGE)
        except StorageError:
            logger.warning("readings.csv of %s: storage failed mid-file; response cut", device_id)
            raise
