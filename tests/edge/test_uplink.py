"""The uplink over real loopback sockets against a scripted `websockets` device door."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from websockets.asyncio.server import serve

from edge.outbox import NewReading, Outbox
from edge.uplink import LinkEnd, Uplink, UplinkSettings
from telemetry.backoff import BackoffPolicy
from tests.edge.wshub import WsHub, running
from tests.support.edge import grid_reading, uplink_running
from tests.support.polling import until

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
FAST = UplinkSettings(
    ack_timeout_s=5.0,
    backoff=BackoffPolicy(0.05, 0.2),
    kicked_backoff=BackoffPolicy(0.5, 1.0),
    auth_backoff=BackoffPolicy(0.5, 1.0),
    delete_interval_s=0.05,
    idle_wake_s=0.1,
)


def new(n: int, *, held: bool = False) -> NewReading:
    return grid_reading(n, T0, held=held)


def uplink_to(
    hub: WsHub, outbox: Outbox, settings: UplinkSettings = FAST, token: str = "secret"
) -> AbstractAsyncContextManager[Uplink]:
    return uplink_running(outbox, hub.url, token, settings)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    async with Outbox.open(tmp_path / "buffer.db", max_bytes=1 << 30) as box:
        yield box


async def depth(outbox: Outbox) -> int:
    return (await outbox.status()).depth


async def settle(outbox: Outbox, expected_depth: int, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while await depth(outbox) != expected_depth:  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)


async def test_a_backlog_drains_in_batches_oldest_first_and_is_deleted(outbox: Outbox) -> None:
    for start in range(0, 5000, 500):
        await outbox.append([new(n) for n in range(start, start + 500)], boot="b")
    async with running(WsHub()) as hub, uplink_to(hub, outbox):
        await settle(outbox, 0)
    assert sorted(hub.stored) == list(range(5000))
    assert hub.received == list(range(5000))  # oldest first, each once
    assert {frame.kind for frame in hub.frames} == {"batch"}
    assert max(len(frame.seqs) for frame in hub.frames) == 1000
    assert hub.stored[42]["grid"]["power_w"] == 42.0
    assert hub.stored[42]["ts"] == (T0 + timedelta(seconds=42)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = await outbox.status()
    assert status.last_ack is not None
    assert status.last_seq == 4999


async def test_a_window_full_of_backlog_leaves_room_for_live_readings(outbox: Outbox) -> None:
    # A hub that acks nothing: the backlog fills the window up to the reserve and stays.
    await outbox.append([new(n) for n in range(3000)], boot="b")
    hub = WsHub(should_ack=lambda seq: False)
    settings = dataclasses.replace(FAST, window=1000, live_reserve=100, ack_timeout_s=60.0)
    async with running(hub), uplink_to(hub, outbox, settings) as uplink:
        await until(lambda: len(hub.received) == 900)
        await asyncio.sleep(0.2)
        assert len(hub.received) == 900  # the backlog stops at capacity - reserve
        for seq in (3000, 3001):
            uplink.offer(await outbox.append([new(seq)], boot="b"))
            await until(lambda seq=seq: seq in hub.received)  # type: ignore[misc]
    kinds = {seq: frame.kind for frame in hub.frames for seq in frame.seqs}
    assert kinds[3000] == kinds[3001] == "reading"
    assert len(hub.received) == 902


async def test_live_readings_go_first_as_single_frames(outbox: Outbox) -> None:
    for start in range(0, 20_000, 1000):
        await outbox.append([new(n) for n in range(start, start + 1000)], boot="b")
    hub = WsHub(ack_delay_s=0.05)  # a slow hub: the backlog takes a while
    async with running(hub), uplink_to(hub, outbox) as uplink:
        await until(lambda: len(hub.frames) >= 2)
        live = await outbox.append([new(20_000)], boot="b")
        uplink.offer(live)
        await until(lambda: 20_000 in hub.stored)
        backlog_done = 19_999 in hub.stored
        await settle(outbox, 0)
    kinds = {frame.seqs[0]: frame.kind for frame in hub.frames}
    assert kinds[20_000] == "reading"
    assert not backlog_done, "the live reading waited for the backlog"
    assert sorted(hub.stored) == list(range(20_001))


async def test_unacked_readings_are_sent_again_after_the_timeout(outbox: Outbox) -> None:
    await outbox.append([new(n) for n in range(300)], boot="b")
    seen: set[int] = set()

    def ack_second_time(seq: int) -> bool:
        # The hub may drop readings it has not acked (docs/protocol.md): this one
        # drops every reading the first time it sees it.
        if seq in seen:
            return True
        seen.add(seq)
        return False

    hub = WsHub(should_ack=ack_second_time)
    settings = dataclasses.replace(FAST, ack_timeout_s=0.3)
    async with running(hub), uplink_to(hub, outbox, settings):
        await settle(outbox, 0)
    assert sorted(hub.received) == sorted(list(range(300)) * 2)
    assert hub.connections == 1


async def test_a_reconnect_sends_everything_unacked_again(outbox: Outbox) -> None:
    await outbox.append([new(n) for n in range(2500)], boot="b")
    # The first connection acks nothing and is closed after two batches.
    hub = WsHub(should_ack=lambda seq: False, close_after_frames=2)
    async with running(hub), uplink_to(hub, outbox):
        await until(lambda: hub.connections == 1 and len(hub.frames) == 2)
        hub.should_ack = lambda seq: True
        hub.close_after_frames = None
        await settle(outbox, 0)
    assert hub.connections == 2
    assert sorted(set(hub.received)) == list(range(2500))
    assert hub.received[2000:] == list(range(2500))  # the second connection, from the start


async def test_an_ack_for_readings_never_sent_deletes_nothing(outbox: Outbox) -> None:
    await outbox.append([new(n, held=n % 2 == 1) for n in range(10)], boot="b")
    hub = WsHub(extra_ranges=[(0, 1_000_000)])
    async with running(hub), uplink_to(hub, outbox):
        await settle(outbox, 5)
    status = await outbox.status()
    assert (status.depth, status.held) == (5, 5)
    assert sorted(hub.stored) == [0, 2, 4, 6, 8]


async def test_held_readings_go_once_restamped(outbox: Outbox) -> None:
    await outbox.append([new(n, held=True) for n in range(3)], boot="this")
    hub = WsHub()
    async with running(hub), uplink_to(hub, outbox) as uplink:
        stored = await outbox.append([new(3)], boot="this")
        uplink.offer(stored)
        await settle(outbox, 3)
        await outbox.restamp(boot="this", offset=T0.timestamp())
        uplink.rescan()
        await settle(outbox, 0)
    assert sorted(hub.stored) == [0, 1, 2, 3]


async def test_a_refused_token_is_retried_slowly_and_logged(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    await outbox.append([new(0)], boot="b")
    hub = WsHub()
    with caplog.at_level(logging.INFO, logger="edge.uplink"):
        async with running(hub), uplink_to(hub, outbox, token="wrong") as uplink:
            await asyncio.sleep(2.0)
            assert uplink.status().last_end is LinkEnd.AUTH_REFUSED
    # auth backoff 0.5 s doubling to 1 s: at most 1 + 2.0 / 0.25 attempts even if
    # every jittered delay were the shortest; a spinning client would make hundreds.
    assert 2 <= len(hub.handshakes) <= 9
    gaps = [b - a for a, b in zip(hub.handshakes, hub.handshakes[1:], strict=False)]
    assert min(gaps) >= 0.25
    assert await depth(outbox) == 1
    assert any("refused the device token" in r.getMessage() for r in caplog.records)


async def test_kicked_with_1008_backs_off_longer_and_says_why(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    await outbox.append([new(n) for n in range(5)], boot="b")
    hub = WsHub(close_after_frames=1, close_code=1008, should_ack=lambda seq: False)
    with caplog.at_level(logging.INFO, logger="edge.uplink"):
        async with running(hub), uplink_to(hub, outbox) as uplink:
            await asyncio.sleep(1.5)
            assert uplink.status().last_end is LinkEnd.KICKED
    gaps = [b - a for a, b in zip(hub.handshakes, hub.handshakes[1:], strict=False)]
    assert 1 <= len(hub.handshakes) <= 4
    assert all(gap >= 0.25 for gap in gaps)
    assert any(
        "1008" in r.getMessage() and "another agent" in r.getMessage() for r in caplog.records
    )


async def test_error_frames_are_logged(outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    await outbox.append([new(n) for n in range(3)], boot="b")
    hub = WsHub(errors_for={1})
    with caplog.at_level(logging.WARNING, logger="edge.uplink"):
        async with running(hub), uplink_to(hub, outbox):
            await settle(outbox, 0)
    assert any("rejected reading seq 1: test" in r.getMessage() for r in caplog.records)


async def test_an_unreachable_hub_is_retried_with_backoff(outbox: Outbox) -> None:
    await outbox.append([new(0)], boot="b")
    hub = WsHub()
    async with running(hub):
        port = hub.port
    # Nothing listens on the port now; the hub comes back on it a little later.
    uplink = Uplink(outbox, url=f"ws://127.0.0.1:{port}", token="secret", settings=FAST)
    task = asyncio.create_task(uplink.run())
    try:
        await asyncio.sleep(0.5)
        assert uplink.status().last_end is LinkEnd.UNREACHABLE
        assert await depth(outbox) == 1
        async with serve(hub.handler, "127.0.0.1", port, process_request=hub.process_request):
            await settle(outbox, 0)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert list(hub.stored) == [0]


async def test_drain_waits_for_the_acks_of_everything_committed(outbox: Outbox) -> None:
    hub = WsHub(ack_delay_s=0.3)
    async with running(hub), uplink_to(hub, outbox) as uplink:
        await until(lambda: uplink.status().connected)
        for n in range(5):
            uplink.offer(await outbox.append([new(n)], boot="b"))
        assert await uplink.drain(10.0)
        assert uplink.status().in_flight == 0
        assert sorted(hub.stored) == list(range(5))
        await settle(outbox, 0)  # the acked readings are deleted too
        assert await uplink.drain(0.5)  # nothing left: at once


async def test_one_cancel_ends_the_uplink_even_as_it_is_woken(outbox: Outbox) -> None:
    """A cancellation landing as the send loop is woken (a reading just offered) must not
    be lost: a TaskGroup cancels its children once, and a lost one would hang the agent's
    shutdown (CPython gh-86296: 3.11's wait_for returns the result instead)."""
    async with running(WsHub()) as hub:
        for attempt in range(40):
            uplink = Uplink(outbox, url=hub.url, token="secret", settings=FAST)
            task = asyncio.create_task(uplink.run(), name="test.uplink")
            await until(lambda: uplink.status().connected)  # noqa: B023 - awaited here
            await asyncio.sleep(0.02)  # idle: waiting to be woken
            stored = await outbox.append([new(10_000 + attempt)], boot="b")
            uplink.offer(stored)
            for _ in range(attempt % 8):
                await asyncio.sleep(0)
            task.cancel()  # once, as a TaskGroup does
            done, _ = await asyncio.wait({task}, timeout=5.0)
            assert done, f"attempt {attempt}: the uplink ignored its cancellation"
            assert task.cancelled()


async def test_health_goes_first_on_each_connection_and_again_on_a_change(
    outbox: Outbox,
) -> None:
    states = ["ok"]

    def health() -> str:
        devices = [{"name": "meter", "state": states[-1]}]
        return json.dumps({"type": "health", "devices": devices}, separators=(",", ":"))

    await outbox.append([new(n) for n in range(3)], boot="b")
    hub = WsHub(close_after_frames=1)  # closes after the backlog's batch: a reconnect
    async with running(hub), uplink_running(outbox, hub.url, "secret", FAST, health) as uplink:
        await until(lambda: hub.connections >= 2 and len(hub.health) >= 2)
        assert [f.kind for f in hub.frames[:2]] == ["health", "batch"]
        states.append("failing")
        uplink.health_changed()
        await until(lambda: hub.health[-1]["devices"][0]["state"] == "failing")
