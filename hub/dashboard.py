"""The hub's built-in dashboard: static pages over the public API (docs/protocol.md).

The pages hold no data: the browser fetches it from ``GET /api/devices`` and
``GET /api/devices/{id}/readings`` and follows the dashboard door
(docs/protocol.md, "Hub -> dashboard"), exactly as any third-party client
would, so the dashboard doubles as the reference client. That is also why the
pages themselves are served without the viewer token: when the hub has one, a
page asks for it in a form and trades it for the session cookie
(docs/protocol.md, "Viewer access"), which the browser then sends with every
API call and socket; the token is never put in a URL.

Routes: ``GET /`` (the fleet), ``GET /devices/{device_id}`` (one device) and
``GET /static/{path}`` (the scripts and styles under ``hub/static/``, shipped
in the package: no build step), served by Starlette's ``StaticFiles``: nothing
outside that directory, an ETag and Last-Modified on every file and a 304 to a
browser that revalidates one it has.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from hub.api import reader_of
from hub.ports import HubReader
from hub.storage.base import StorageError
from hub.viewer_access import viewer_policy
from telemetry import is_valid_device_id

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

# The pages and scripts change with the package, not with the data: let the
# browser keep them but revalidate, so an upgraded hub is picked up at once.
_CACHE_HEADERS: Final = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type="text/html", headers=_CACHE_HEADERS)


@router.get("/")
async def fleet_page() -> FileResponse:
    """Every device with its status and headline numbers."""
    return _page("index.html")


@router.get("/devices/{device_id}", response_model=None)
async def device_page(request: Request, device_id: str) -> FileResponse | HTMLResponse:
    """One device: energy flow, latest values, and a rolling chart of the powers.

    A device the hub does not know (no token, no stored reading, not connected)
    is a 404 page rather than an empty dashboard that waits forever; but only
    for a visitor who may read: to anyone else the page is the same whether the
    device exists or not (it asks for the viewer token).
    """
    # The same rule as the doors (docs/protocol.md, "Doors"): anything else cannot exist.
    if not is_valid_device_id(device_id):
        return _not_found(device_id)
    may_read = viewer_policy(request).refusal(request) is None
    if may_read and not await _known(reader_of(request), device_id):
        return _not_found(device_id)
    return _page("device.html")


async def _known(reader: HubReader, device_id: str) -> bool:
    if reader.is_online(device_id) or reader.last_reading(device_id) is not None:
        return True
    try:
        return any(record.device_id == device_id for record in await reader.stored.devices())
    except StorageError:
        return True  # cannot tell: the page itself says what it can reach


def _not_found(device_id: str) -> HTMLResponse:
    name = html.escape(device_id[:80])
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>EMS Switchboard · no device {name}</title>"
        '<link rel="stylesheet" href="/static/dashboard.css"></head><body>'
        '<header class="topbar"><a class="brand" href="/">EMS Switchboard</a></header>'
        f'<main class="page"><h1>No device “{name}”</h1>'
        "<p>This hub has no token and no reading for this device id. "
        '<a href="/">See every device it knows</a>, or add a token with '
        f"<code>ems hub token add {name}</code>.</p></main></body></html>"
    )
    return HTMLResponse(body, status_code=404, headers=_CACHE_HEADERS)


class _StaticFiles(StaticFiles):
    """``StaticFiles`` with :data:`_CACHE_HEADERS` on every file and every 304."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_CACHE_HEADERS)
        return response


router.mount("/static", _StaticFiles(directory=STATIC_DIR), name="static")
