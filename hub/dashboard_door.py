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

The door reaches the hub only through its ``DashboardPort`` (hub/ports.py) and
the ``ViewerPolicy`` (hub/viewer_access.py).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket

from hub.auth import AuthFailure
from hub.ports import DashboardPort
from hub.refusals import shown
from hub.sockets import close_quietly
from hub.viewer_access import viewer_policy
from telemetry import CloseCode, is_valid_device_id

logger = logging.getLogger(__name__)

router = APIRouter()


@router.websocket("/ws/dashboard/{device_id}")
async def dashboard_door(websocket: WebSocket, device_id: str) -> None:
    port: DashboardPort = websocket.app.state.dashboard_port
    if not is_valid_device_id(device_id):
        await port.refuse(websocket, AuthFailure.BAD_DEVICE_ID, f"bad device id {shown(device_id)}")
        return
    viewer_refused = viewer_policy(websocket).refusal(websocket)
    if viewer_refused is not None:
        # A missing viewer token keeps the door's historical label, bad_token.
        reason = (
            AuthFailure.BAD
            if viewer_refused.reason is AuthFailure.MISSING
            else viewer_refused.reason
        )
        await port.refuse(websocket, reason, f"{device_id}: {viewer_refused.detail}")
        return
    address = websocket.client.host if websocket.client else ""
    if port.admit(address) is not None:
        # Accepted to say why: 1013 is "try again later" (docs/protocol.md, "Close codes").
        await websocket.accept()
        await close_quietly(websocket, CloseCode.TRY_AGAIN_LATER, within=1.0, reason="busy")
        return
    try:
        await _serve(port, websocket, device_id)
    finally:
        port.leave(address)


async def _serve(port: DashboardPort, websocket: WebSocket, device_id: str) -> None:
    await websocket.accept()
    feed = port.feed(websocket, device_id)
    async with port.subscribe(device_id, feed):
        await feed.run()
