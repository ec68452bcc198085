"""The dashboard door, ``/ws/dashboard/{device_id}`` (docs/protocol.md, "Hub -> dashboard").

Who may open it is decided in hub/viewer_access.py, the same as for the API:
a browser only from the hub's own origin (or ``--allow-origin``), and, when
the hub runs with a viewer token, the token as ``Authorization: Bearer``,
``?token=`` or the dashboard's session cookie. A refusal goes through
hub/refusals.py (counted, logged within budget) and is an HTTP 403 answer to
the upgrade.

Each connection gets a ``DashboardFeed`` (hub/fanout.py): status, then the last
reading, then live readings, in order and each once; a dashboard that cannot
keep up loses its oldest frames and is eventually closed with 1013.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket

from hub.auth import AuthFailure
from hub.fanout import DashboardFeed
from hub.metrics import Door
from hub.refusals import log_refusal, refuse_handshake, shown
from hub.runtime import Hub
from hub.sockets import buffered_bytes_probe, close_quietly
from hub.viewer_access import viewer_refusal
from telemetry import CloseCode, is_valid_device_id

logger = logging.getLogger(__name__)

router = APIRouter()


@router.websocket("/ws/dashboard/{device_id}")
async def dashboard_door(websocket: WebSocket, device_id: str) -> None:
    hub: Hub = websocket.app.state.hub
    if not is_valid_device_id(device_id):
        await refuse_handshake(
            websocket,
            counters=hub.counters,
            limiter=hub.refusal_log,
            door=Door.DASHBOARD,
            reason=AuthFailure.BAD_DEVICE_ID,
            detail=f"bad device id {shown(device_id)}",
        )
        return
    viewer_refused = viewer_refusal(
        websocket, hub.viewer, hub.settings.allowed_origins, hub.viewer_guesses
    )
    if viewer_refused is not None:
        # A missing viewer token keeps the door's historical label, bad_token.
        reason = (
            AuthFailure.BAD
            if viewer_refused.reason is AuthFailure.MISSING
            else viewer_refused.reason
        )
        await refuse_handshake(
            websocket,
            counters=hub.counters,
            limiter=hub.refusal_log,
            door=Door.DASHBOARD,
            reason=reason,
            detail=f"{device_id}: {viewer_refused.detail}",
        )
        return
    address = websocket.client.host if websocket.client else ""
    refusal = hub.dashboards.try_add(address)
    if refusal is not None:
        # Accepted to say why: 1013 is "try again later" (docs/protocol.md, "Close codes").
        hub.gate.counters.refused[refusal] += 1
        log_refusal(hub.refusal_log, "dashboard door", address, f"{refusal} (1013)")
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
