"""The device door, ``/ws/device/{device_id}`` (docs/protocol.md, "Doors").

Order of a connection's life:

1. the device id and the bearer token are checked before anything is read;
   a refusal is a close-before-accept, which uvicorn answers with HTTP 403
   (counted and logged within budget by hub/refusals.py);
2. accept, then register under the ghost protocol (hub/connections.py);
3. two tasks until either ends: the receive loop (gatekeeper, hot path, cold
   path) and the replies' sender (acks and errors);
4. identity-checked unregistration.

Per frame: ``parse_device_frame`` splits it into valid readings and
rejections. Rejections are counted and logged by the gatekeeper; one with a
seq gets an error frame and is acked. A valid live reading is pushed to the
device's dashboards at once (never awaited), then offered to the writer with
the connection's replies as its AckSink when it has a seq (docs/protocol.md: no
seq, no ack). Batch items are stored only: they are history; when a dashboard
watches the device, it is told once they are stored (hub/device_health.py).
A ``health`` frame (docs/protocol.md, "Device health") is recognised by its
first bytes before the parser runs, and kept by the connection manager.
A ``time_request`` frame is answered at once with the hub's clock
(docs/protocol.md, "Time"): an agent without NTP stamps its readings with it.

The door reaches the hub only through its ``DevicePort`` (hub/ports.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from hub.auth import AuthError, AuthFailure, bearer_token
from hub.batch_writer import AckSink
from hub.connections import PublisherSession, Registration
from hub.device_health import HistoryNotice
from hub.metrics import Door, DropReason
from hub.ports import DevicePort
from hub.refusals import shown
from hub.sockets import PeerGone, close_quietly, send_text_or_raise
from hub.storage.base import StoredReading
from telemetry import (
    CloseCode,
    FrameProblem,
    ParsedFrame,
    Rejected,
    describe_validation_error,
    is_valid_device_id,
    parse_device_frame,
)
from telemetry.client_text import client_text
from telemetry.health import HealthFrame, is_health_frame
from telemetry.timesync import TimeRequest, time_frame

logger = logging.getLogger(__name__)

router = APIRouter()


@router.websocket("/ws/device/{device_id}")
async def device_door(websocket: WebSocket, device_id: str) -> None:
    port: DevicePort = websocket.app.state.device_port
    if not is_valid_device_id(device_id):
        await port.refuse(websocket, AuthFailure.BAD_DEVICE_ID, f"bad device id {shown(device_id)}")
        return
    try:
        token_hash = await port.verify(
            device_id, bearer_token(websocket.headers.get("authorization"))
        )
    except AuthError as err:
        # One log budget for all refusals: a scan over many device ids cannot flood the log.
        await port.refuse(websocket, err.failure, client_text(f"{device_id}: {err.detail}"))
        return
    await websocket.accept()
    session = PublisherSession(
        device_id=device_id,
        socket=websocket,
        token_hash=token_hash,
        replies=port.replies(websocket, device_id),
    )
    # With several hubs, registering claims the device's next epoch first, which closes
    # older sockets wherever they are (hub/cluster/lease.py).
    registration = await port.register(session)
    if registration is not Registration.REGISTERED:
        code = (
            CloseCode.GOING_AWAY
            if registration is Registration.STOPPING
            else CloseCode.POLICY_VIOLATION
        )
        await close_quietly(websocket, code, within=1.0)
        return
    logger.info("device %s connected", device_id)
    receiver = asyncio.create_task(
        _receive_loop(port, session), name=f"device[{device_id}].receive"
    )
    sender = asyncio.create_task(session.replies.run(), name=f"device[{device_id}].acks")
    # 1000 only for an orderly end; an unexpected error in the hub is 1011 (docs/protocol.md).
    close_code = CloseCode.NORMAL
    try:
        done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        failures = [
            error
            for task in done
            if (error := task.exception()) is not None and not isinstance(error, PeerGone)
        ]
        if failures:
            # Caught here, not left to uvicorn: one count, one log line with its traceback,
            # and the device hears 1011 rather than a normal close.
            close_code = CloseCode.INTERNAL_ERROR
            port.counters.internal_errors[Door.DEVICE] += 1
            logger.error(
                "device %s: unexpected error, closing the connection with 1011: %r",
                device_id,
                failures[0],
                exc_info=failures[0],
            )
    finally:
        for task in (receiver, sender):
            task.cancel()
        await asyncio.gather(receiver, sender, return_exceptions=True)
        if await port.unregister(session):
            logger.info("device %s disconnected", device_id)
        # Ended by the hub (replaced, revoked, stopping): the same code as the kicker's,
        # whichever of us gets there first.
        await close_quietly(websocket, session.close_code or close_code, within=1.0)


async def _receive_loop(port: DevicePort, session: PublisherSession) -> None:
    socket = session.socket
    loop = asyncio.get_running_loop()
    while True:
        message = await socket.receive()
        session.last_heard = loop.time()  # the idle sweep's clock (hub/runtime.py)
        if message["type"] == "websocket.disconnect":
            if message.get("code") == CloseCode.MESSAGE_TOO_BIG:
                # uvicorn's parser (ws_max_size, hub/server.py) failed the frame with 1009
                # before we could see it; count it with the other bad frames.
                port.reject(
                    session.device_id,
                    Rejected(FrameProblem.TOO_LARGE, "frame over 1 MiB: closed with 1009"),
                    asyncio.get_running_loop().time(),
                )
            return
        if session.ended:
            # Replaced, revoked or stopping: nothing from this socket is used any more.
            port.counters.dropped[DropReason.REPLACED] += 1
            return
        text = message.get("text")
        if text is not None and '"time_request"' in text:
            try:
                request = TimeRequest.model_validate_json(text)
            except ValidationError:
                pass  # not a valid one: the reading parser below says why
            else:
                # The clock is read as late as possible: the edge bounds its error by the
                # round trip, wherever in it the hub read the clock (edge/hubtime.py).
                await send_text_or_raise(socket, time_frame(request.id, datetime.now(UTC)))
                continue
        payload: str | bytes = text if text is not None else message.get("bytes") or b""
        now = datetime.now(UTC)
        if text is not None and is_health_frame(text):
            await handle_health(port, session, text, now)
            continue
        handle_frame(port, session, parse_device_frame(payload, now=now), now)


async def handle_health(
    port: DevicePort, session: PublisherSession, text: str, now: datetime
) -> None:
    """An agent's health frame (docs/protocol.md, "Device health"): keep it, show it.

    Its ``timezone`` is stored (hub/site_zones.py): awaited, since it is one small
    write at most once per connection, and the frame's order among the readings is kept.
    """
    try:
        frame = HealthFrame.model_validate_json(text)
    except ValidationError as err:
        rejected = Rejected(
            FrameProblem.NOT_AN_OBJECT, f"health frame: {describe_validation_error(err)}"
        )
        port.reject(session.device_id, rejected, asyncio.get_running_loop().time())
        return
    await port.keep_health(session.device_id, frame, now)


def handle_frame(
    port: DevicePort, session: PublisherSession, frame: ParsedFrame, now: datetime
) -> None:
    """Route one parsed frame: rejections, hot path, cold path. Never awaits."""
    device_id = session.device_id
    if frame.rejected:
        clock = asyncio.get_running_loop().time()
        for rejected in frame.rejected:
            port.reject(device_id, rejected, clock)
            if rejected.seq is not None:
                # docs/protocol.md: an ack means committed *or rejected as invalid*.
                session.replies.rejected(rejected.seq, rejected.reason)
    path = "batch" if frame.is_batch else "live"
    batch_sink: AckSink = session.replies
    if frame.is_batch and frame.readings and port.watched(device_id):
        # Open dashboards hear when the batch is stored, so their charts fill in.
        batch_sink = HistoryNotice(
            session.replies,
            ((r.seq, r.ts) for r in frame.readings if r.seq is not None),
            lambda start, end: port.history_stored(device_id, start, end),
        )
    counters = port.counters
    for reading in frame.readings:
        counters.readings_in[path] += 1
        if not frame.is_batch:
            port.publish(device_id, reading, now)
        row = StoredReading(device_id=device_id, reading=reading, received_at=now)
        sink = batch_sink if reading.seq is not None else None
        if not port.offer(row, sink):
            # Not acked: the edge re-sends it (docs/protocol.md, "Hub -> device").
            counters.dropped[DropReason.QUEUE_FULL] += 1
