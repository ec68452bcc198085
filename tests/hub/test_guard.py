"""The hub's WebSocket protocol layer (hub/guard.py): peer mistakes are not hub errors.

Through a real server, at the byte level (tests/hub/raw_ws.py); every hub
fixture here also fails the test on anything logged at ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct

import pytest

from tests.hub.raw_ws import STATUS_LINE, read_head, server_close_code, upgrade_request, ws_frame
from tests.support.hub import RunningHub, device_id, reading, recv_json


async def raw_socket(
    hub: RunningHub, request: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(request)
    head = await read_head(reader, 10.0)
    match = STATUS_LINE.match(head)
    assert match is not None, head
    assert match[1] == b"101", head
    return reader, writer, head.partition(b"\r\n\r\n")[2]


async def close_code_after(
    reader: asyncio.StreamReader, received: bytes, within: float = 10.0
) -> int | None:
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                received += chunk
    return server_close_code(received)


async def test_text_that_is_not_utf8_is_closed_with_1007_and_no_error(
    sqlite_hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer, received = await raw_socket(
        sqlite_hub, upgrade_request("/ws/dashboard/ems_001")
    )
    writer.write(ws_frame(0x1, b"\xc3\x28 not utf-8"))
    assert await close_code_after(reader, received) == 1007
    writer.close()
    assert "not UTF-8" in caplog.text
    assert not any(record.exc_info for record in caplog.records)


async def test_dashboards_failed_by_the_protocol_layer_while_readings_flow_are_no_error(
    sqlite_hub: RunningHub,
) -> None:
    """uvicorn closes them (1002) under their feeds, which are sending: peer gone, not a bug.

    The race needs a feed woken in the same loop turn as its socket's protocol
    error; many dashboards and a fast device make it likely in every run.
    """
    publisher_id = device_id()
    device = await sqlite_hub.device(publisher_id, await sqlite_hub.add_token(publisher_id))
    seq = 0

    async def publish() -> None:
        nonlocal seq
        while True:
            await device.send(json.dumps(reading(seq)))
            seq += 1
            await asyncio.sleep(0)

    async def fail_one() -> int | None:
        reader, writer, received = await raw_socket(
            sqlite_hub, upgrade_request(f"/ws/dashboard/{publisher_id}")
        )
        await asyncio.sleep(0.2)
        frame = bytearray(ws_frame(0x1, b"{}"))
        frame[0] |= 0x40  # RSV1 without an agreed extension: a protocol error
        writer.write(bytes(frame))
        try:
            return await close_code_after(reader, received)
        finally:
            writer.close()

    publisher = asyncio.create_task(publish(), name="test.publish")
    try:
        codes = await asyncio.gather(*(fail_one() for _ in range(40)))
        await asyncio.sleep(0.3)
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
    assert set(codes) == {1002}
    assert seq > 10
    # The hub goes on: a new dashboard gets the device's status.
    watcher = await sqlite_hub.dashboard(publisher_id)
    assert (await recv_json(watcher))["type"] == "status"


async def test_handshake_headers_and_failures_stay_out_of_the_debug_log(
    sqlite_hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="uvicorn.error")  # as `ems -v hub serve` does
    publisher_id = device_id()
    token = await sqlite_hub.add_token(publisher_id)
    reader, writer, received = await raw_socket(
        sqlite_hub,
        upgrade_request(f"/ws/device/{publisher_id}", f"Authorization: Bearer {token}"),
    )
    writer.write(ws_frame(0x8, struct.pack("!H", 1000)))
    assert await close_code_after(reader, received) == 1000
    writer.close()
    bad = upgrade_request("/ws/dashboard/ems_001").replace(b"Version: 13", b"Version: 99")
    reader, writer = await asyncio.open_connection("127.0.0.1", sqlite_hub.port)
    writer.write(bad)
    head = await read_head(reader, 10.0)
    assert head.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 426 ")), head
    writer.close()
    assert token not in caplog.text
    assert not any(record.exc_info for record in caplog.records)
