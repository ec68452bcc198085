"""The device door, ``/ws/device/{device_id}`` (PROTOCOL.md, "Doors", "Device -> hub").

Order of a connection's life:

1. the device id and the bearer token are checked before anything is read;
   a refusal is a close-before-accept, which uvicorn answers with HTTP 403;
2. accept, then register under the ghost protocol (hub/connections.py);
3. two tasks until either ends: the receive loop (gatekeeper, hot path, cold
   path) and the outbox's sender (acks and errors);
4. identity-checked unregistration.

Per frame: ``parse_device_frame`` splits it into valid readings and
rejections. Rejections are counted and logged by the gatekeeper; one with a
seq gets an error frame and is acked. A valid live reading is pushed to the
device's dashboards at once (never awaited), then offered to the writer with
the connection's outbox as its AckSink when it has a seq (PROTOCOL.md: no
seq, no ack). Batch items are stored only: they are history.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, WebSocket

from hub.auth import AuthError, AuthFailure, bearer_token
from hub.connections import PublisherSession
from hub.device_outbox import DeviceOutbox
from hub.metrics import Door, DropReason
from hub.runtime import Hub
from hub.sockets import PeerGone, close_quietly
from hub.storage.base import StoredReading
from telemetry import (
    CloseCode,
    FrameProblem,
    ParsedFrame,
    Rejected,
    is_valid_device_id,
    parse_device_frame,
)

logger = logging.getLogger(__name__)

router = APIRouter()


@router.websocket("/ws/device/{device_id}")
async def device_door(websocket: WebSocket, device_id: str) -> None:
    hub: Hub = websocket.app.state.hub
    if not is_valid_device_id(device_id):
        hub.counters.refused[(Door.DEVICE, AuthFailure.BAD_DEVICE_ID)] += 1
        await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
        return
    try:
        token_hash = hub.tokens.verify(
            device_id, bearer_token(websocket.headers.get("authorization"))
        )
    except AuthError as err:
        hub.counters.refused[(Door.DEVICE, err.failure)] += 1
        # One log budget for all refusals: a scan over many device ids cannot flood the log.
        decision = hub.refusal_log.decide("device door", asyncio.get_running_loop().time())
        if decision.suppressed_before:
            logger.info("device door: %d more refusals were not logged", decision.suppressed_before)
        if decision.log:
            logger.info("device door refused %s: %s", device_id, err.detail)
        await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
        return
    await websocket.accept()
    session = PublisherSession(
        device_id=device_id,
        socket=websocket,
        token_hash=token_hash,
        outbox=DeviceOutbox(websocket, device_id, hub.counters),
    )
    if not await hub.manager.connect_publisher(session):
        await close_quietly(websocket, CloseCode.GOING_AWAY, within=1.0)
        return
    logger.info("device %s connected", device_id)
    receiver = asyncio.create_task(_receive_loop(hub, session), name=f"device[{device_id}].receive")
    sender = asyncio.create_task(session.outbox.run(), name=f"device[{device_id}].acks")
    try:
        done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, PeerGone):
                raise error
    finally:
        for task in (receiver, sender):
            task.cancel()
        await asyncio.gather(receiver, sender, return_exceptions=True)
        still_registered = await hub.manager.disconnect_publisher(session)
        if still_registered:
            logger.info("device %s disconnected", device_id)
        # Ended by the hub (replaced, revoked, stopping): the same code as the kicker's,
        # whichever of us gets there first.
        await close_quietly(websocket, session.close_code or CloseCode.NORMAL, within=1.0)


async def _receive_loop(hub: Hub, session: PublisherSession) -> None:
    socket = session.socket
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            if message.get("code") == CloseCode.MESSAGE_TOO_BIG:
                # uvicorn's parser (ws_max_size, hub/server.py) failed the frame with 1009
                # before we could see it; count it with the other bad frames.
                hub.gatekeeper.reject(
                    session.device_id,
                    Rejected(FrameProblem.TOO_LARGE, "frame over 1 MiB: closed with 1009"),
                    asyncio.get_running_loop().time(),
                )
            return
        if session.ended:
            # Replaced, revoked or stopping: nothing from this socket is used any more.
            hub.counters.dropped[DropReason.REPLACED] += 1
            return
        text = message.get("text")
        payload: str | bytes = text if text is not None else message.get("bytes") or b""
        now = datetime.now(UTC)
        handle_frame(hub, session, parse_device_frame(payload, now=now), now)


def handle_frame(hub: Hub, session: PublisherSession, frame: ParsedFrame, now: datetime) -> None:
    """Route one parsed frame: rejections, hot path, cold path. Never awaits."""
    device_id = session.device_id
    if frame.rejected:
        clock = asyncio.get_running_loop().time()
        for rejected in frame.rejected:
            hub.gatekeeper.reject(device_id, rejected, clock)
            if rejected.seq is not None:
                # PROTOCOL.md: an ack means committed *or rejected as invalid*.
                session.outbox.rejected(rejected.seq, rejected.reason)
    path = "batch" if frame.is_batch else "live"
    for reading in frame.readings:
        hub.counters.readings_in[path] += 1
        if not frame.is_batch:
            hub.manager.publish(device_id, reading, now)
        row = StoredReading(device_id=device_id, reading=reading, received_at=now)
        sink = session.outbox if reading.seq is not None else None
        if not hub.writer.offer(row, sink):
            # Not acked: the edge re-sends it (PROTOCOL.md, "Hub -> device").
            hub.counters.dropped[DropReason.QUEUE_FULL] += 1
