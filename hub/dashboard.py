"""The hub's built-in dashboard: static pages over the public API (DESIGN.md, "Hub HTTP API").

The pages hold no data: the browser fetches it from ``GET /api/devices`` and
``GET /api/devices/{id}/readings`` and follows the dashboard door
(PROTOCOL.md, "Hub -> dashboard"), exactly as any third-party client would, so
the dashboard doubles as the reference client. That is also why the pages
themselves are served without the viewer token: the token, given to a page as
``?token=...``, is carried by the page's scripts to every API call and socket.

Routes: ``GET /`` (the fleet), ``GET /devices/{device_id}`` (one device) and
``GET /static/{path}`` (the scripts and styles under ``hub/static/``, shipped
in the package: no build step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

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


@router.get("/devices/{device_id}")
async def device_page(device_id: str) -> FileResponse:
    """One device: energy flow, latest values, and a rolling chart of the powers."""
    # The same rule as the doors (PROTOCOL.md, "Doors"): anything else cannot exist.
    if not is_valid_device_id(device_id):
        raise HTTPException(status_code=404, detail="no such device id")
    return _page("device.html")


@router.get("/static/{path:path}")
async def static_file(path: str) -> FileResponse:
    """A file under ``hub/static/``; nothing outside it, whatever the path says."""
    if "\x00" in path:  # the file system cannot name it: no such file
        raise HTTPException(status_code=404, detail="not found")
    candidate = (STATIC_DIR / path).resolve()
    if not candidate.is_relative_to(STATIC_DIR) or not candidate.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(candidate, headers=_CACHE_HEADERS)
