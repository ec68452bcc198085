"""The dashboard door, ``/ws/dashboard/{device_id}`` (PROTOCOL.md, "Hub -> dashboard").

Open by default. When the hub runs with a viewer token (``--viewer-token`` /
``EMS_VIEWER_TOKEN``) the door asks for it as ``Authorization: Bearer <token>``
or ``?token=<token>`` (browsers cannot set headers on a WebSocket); a missing
or wrong one is refused before accept, which uvicorn answers with HTTP 403.

Each connection gets a ``DashboardFeed`` (hub/fanout.py): status, then the last
reading, then live readings, in order and each once; a dashboard that cannot
keep up loses its oldest frames and is eventually closed with 1013.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket

from hub.auth import AuthFailure, bearer_token
from hub.fanout import DashboardFeed
from hub.metrics import Door
from hub.runtime import Hub
from hub.sockets import buffered_bytes_probe, close_quietly
from telemetry import CloseCode, is_valid_device_id

logger = logging.getLogger(__name__)

router = APIRouter()


def viewer_token_of(websocket: WebSocket) -> str | None:
    """The viewer token a client offered: header first, then ``?token=``."""
    return bearer_token(websocket.headers.get("authorization")) or websocket.query_params.get(
        "token"
    )


@router.websocket("/ws/dashboard/{device_id}")
async def dashboard_door(websocket: WebSocket, device_id: str) -> None:
    hub: Hub = websocket.app.state.hub
    if not is_valid_device_id(device_id):
        hub.counters.refused[(Door.DASHBOARD, AuthFailure.BAD_DEVICE_ID)] += 1
        await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
        return
    if not hub.viewer.allows(viewer_token_of(websocket)):
        hub.counters.refused[(Door.DASHBOARD, AuthFailure.BAD)] += 1
        await websocket.close(CloseCode.POLICY_VIOLATION)
        return
    address = websocket.client.host if websocket.client else ""
    refusal = hub.dashboards.try_add(address)
    if refusal is not None:
        # Accepted to say why: 1013 is "try again later" (docs/protocol.md, "Close codes").
        hub.gate.counters.refused[refusal] += 1
        await websocket.accept()
        await close_quietly(websocket, CloseCode.TRY_AGAIN_LATER, within=1.0, reason="busy")
        return
    try:
        await _serve(hub, websocket, device_id)
    finally:
        hub.dashboards.remove(address)


async def _serve(hub: Hub, websocket: WebSocket, device_id: str) -> None:
    await websocket.accept()
    feed = DashboardFeed(
        websocket,
        device_id,
        hub.settings.feed_policy,
        hub.feed_counters,
        transport_buffered=buffered_bytes_probe(websocket),
    )
    async with hub.manager.subscribe(device_id, feed):
        await feed.run()
