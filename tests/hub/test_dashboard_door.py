"""The dashboard door over real sockets: order, exactly-once, slow dashboards, viewer token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.fanout import FeedPolicy
from hub.sockets import buffered_bytes
from tests.support.hub import RunningHub, device_id, reading, recv_ack_seqs, recv_json, running_hub
from tests.support.polling import until


async def test_status_then_last_reading_then_live_in_order_each_once(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    await device.send(json.dumps(reading(0)))
    await recv_ack_seqs(device, {0})
    dashboards = [await sqlite_hub.dashboard(me) for _ in range(4)]
    for dashboard in dashboards:
        status = await recv_json(dashboard)
        assert status["type"] == "status"
        assert status["device_id"] == me
        assert status["online"] is True
        assert status["since"].endswith("Z")
        last = await recv_json(dashboard)
        assert (last["type"], last["seq"], last["device_id"]) == ("reading", 0, me)
        assert last["received_at"].endswith("Z")
    count = 300
    for seq in range(1, count + 1):
        await device.send(json.dumps(reading(seq)))
    for dashboard in dashboards:
        seqs = [(await recv_json(dashboard))["seq"] for _ in range(count)]
        assert seqs == list(range(1, count + 1))
    # Nothing more is pending: no frame was sent twice.
    for dashboard in dashboards:
        with pytest.raises(TimeoutError):
            await recv_json(dashboard, within=0.3)
    # The device leaving is a status frame too.
    await device.close()
    for dashboard in dashboards:
        assert (await recv_json(dashboard))["online"] is False


async def test_a_dashboard_of_a_device_never_seen(sqlite_hub: RunningHub) -> None:
    dashboard = await sqlite_hub.dashboard(device_id())
    status = await recv_json(dashboard)
    assert (status["online"], status["since"]) == (False, None)
    await dashboard.send("anything a dashboard sends is ignored")
    await dashboard.send(b"\x00")
    with pytest.raises(TimeoutError):
        await recv_json(dashboard, within=0.3)


async def test_invalid_device_id_is_refused(sqlite_hub: RunningHub) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(sqlite_hub.ws("/ws/dashboard/" + "x" * 65))
    assert refused.value.response.status_code == 403


async def test_viewer_token(tmp_path: Path, no_errors_logged: Any) -> None:
    async with running_hub(None, tmp_path, viewer_token="look-only") as hub:
        for url in ["/ws/dashboard/ems_001", "/ws/dashboard/ems_001?token=nope"]:
            with pytest.raises(InvalidStatus) as refused:
                await connect(hub.ws(url))
            assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus):
            await connect(
                hub.ws("/ws/dashboard/ems_001"), additional_headers={"Authorization": "Bearer no"}
            )
        by_query = await hub.dashboard("ems_001?token=look-only")
        assert (await recv_json(by_query))["type"] == "status"
        by_header = await connect(
            hub.ws("/ws/dashboard/ems_001"),
            additional_headers={"Authorization": "Bearer look-only"},
        )
        assert (await recv_json(by_header))["type"] == "status"
        await by_header.close()
        metrics = await hub.metrics()
        assert metrics['ems_refused_total{door="dashboard",reason="bad_token"}'] == 3


def _tiny_receive_buffer_socket(port: int) -> socket.socket:
    """A client socket that takes little from the network while nobody reads it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_a_stalled_dashboard_does_not_delay_others_and_is_closed_with_1013(
    tmp_path: Path, no_errors_logged: Any
) -> None:
    policy = FeedPolicy(max_frames=10_000, max_bytes=256 * 1024, stall_s=1.0, close_timeout_s=60)
    async with running_hub(None, tmp_path, feed_policy=policy) as hub:
        me = device_id()
        device = await hub.device(me, await hub.add_token(me))
        fast = [await hub.dashboard(me) for _ in range(2)]
        stalled = await connect(
            hub.ws(f"/ws/dashboard/{me}"),
            sock=_tiny_receive_buffer_socket(hub.port),
            max_queue=1,
        )
        for dashboard in fast:
            assert (await recv_json(dashboard))["type"] == "status"
        # Big readings (~8 KB each) fill the stalled client's buffers quickly. The
        # device sends until the hub gives up on the stalled dashboard.
        padding = {f"value_{i:03d}": float(i) for i in range(250)}
        peak = 0
        sent = 0
        saw_transport = False
        received: list[list[int]] = [[] for _ in fast]

        async def keep_reading(dashboard: Any, into: list[int]) -> None:
            while True:
                into.append(json.loads(await dashboard.recv())["seq"])

        readers = [
            asyncio.create_task(keep_reading(d, into))
            for d, into in zip(fast, received, strict=True)
        ]
        async with asyncio.timeout(120):
            while hub.hub.metrics.feeds.closed_too_slow == 0 or sent < 200:
                await device.send(json.dumps(reading(sent, extra=padding)))
                sent += 1
                for feed in hub.hub._manager.feeds():
                    peak = max(peak, feed.queue.queued_bytes + buffered_bytes(feed.socket))
                    saw_transport = saw_transport or buffered_bytes(feed.socket) > 0
                if sent % 20 == 0:
                    await asyncio.sleep(0.001)
        # Every fast dashboard got every reading, in order, while one stalled.
        await until(lambda: all(len(seqs) >= sent for seqs in received), within=60)
        for reader in readers:
            reader.cancel()
        assert all(seqs == list(range(sent)) for seqs in received)
        # The stalled one was cut off with 1013, and its backlog never outgrew the bound
        # (plus the one frame in flight that uvicorn's send may hold beyond it).
        assert hub.hub.metrics.feeds.closed_too_slow == 1
        assert saw_transport, "the fan-out could not see the transports' write buffers"
        assert peak <= policy.max_bytes + 9_000
        assert hub.hub.metrics.feeds.dropped > 0
        # It stopped reading; now it reads again: what is left, then the close frame.
        async with asyncio.timeout(60):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await stalled.recv()
        assert stalled.close_code == 1013
        metrics = await hub.metrics()
        assert metrics["ems_dashboards_closed_slow_total"] == 1
        assert metrics['ems_dropped_total{reason="dashboard_slow"}'] > 0
        assert metrics['ems_connections{door="dashboard"}'] == 2


async def test_a_dashboard_left_unread_is_released_when_its_hub_stops(
    tmp_path: Path, no_errors_logged: Any
) -> None:
    # tests/support/hub.py closes every client a test opened. One the test stopped
    # reading has its reading paused (websockets' max_queue), never reads the close
    # frame, and its socket was left open for the garbage collector (ResourceWarning).
    async with running_hub(None, tmp_path) as hub:
        me = device_id()
        device = await hub.device(me, await hub.add_token(me))
        watcher = await hub.dashboard(me)
        for seq in range(100):
            await device.send(json.dumps(reading(seq)))
        await until(lambda: not watcher.transport.is_reading(), within=60)
    assert watcher.transport.is_closing()
    await asyncio.sleep(0)  # the transport's connection_lost runs on the next loop pass
    assert watcher.transport.get_extra_info("socket").fileno() == -1, "socket still open"
