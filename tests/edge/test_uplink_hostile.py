"""The uplink against a hub that refuses readings or sends garbage, over real sockets:
no hub frame takes the uplink down, and no refused reading blocks the outbox."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from edge.outbox import NewReading, Outbox, ts_us_of
from edge.uplink import Uplink, UplinkSettings
from telemetry import parse_device_frame, seq_ranges
from telemetry.backoff import BackoffPolicy
from tests.edge.hubproc import HubProcess, running_hub
from tests.edge.wshub import WsHub, running
from tests.support.edge import grid_reading, uplink_running
from tests.support.polling import until

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
FAST = UplinkSettings(
    ack_timeout_s=0.3,
    backoff=BackoffPolicy(0.05, 0.2),
    delete_interval_s=0.05,
    idle_wake_s=0.1,
)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    async with Outbox.open(tmp_path / "buffer.db", max_bytes=1 << 30) as box:
        yield box


async def depth(outbox: Outbox) -> int:
    return (await outbox.status()).depth


async def drained(outbox: Outbox, within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while await depth(outbox):  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)


def bad_name_reading(n: int) -> NewReading:
    """Reading ``n`` with an `extra` name no hub accepts (docs/protocol.md, "A reading")."""
    body = json.dumps({"grid": {"power_w": 1.0}, "extra": {"bad name\n": 1.0}})
    return NewReading(mono=float(n), body=body, ts_us=ts_us_of(T0 + timedelta(seconds=n)))


async def test_a_reading_refused_but_never_acked_is_given_up_after_three_refusals(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    await outbox.append([grid_reading(n, T0) for n in range(5)], boot="b")
    hub = WsHub(errors_for={2}, should_ack=lambda seq: seq != 2)
    with caplog.at_level(logging.WARNING, logger="edge.uplink"):
        async with running(hub), uplink_running(outbox, hub.url, hub.token, FAST) as uplink:
            await drained(outbox)
            status = uplink.status()
    assert hub.received.count(2) == 3  # sent, refused, re-sent twice: then given up
    assert sorted(hub.stored) == [0, 1, 2, 3, 4]
    assert (status.refused, status.given_up, status.acked) == (3, 1, 4)  # 2 was never acked
    gave_up = [r for r in caplog.records if "gave up reading seq 2" in r.getMessage()]
    assert len(gave_up) == 1
    assert gave_up[0].levelno == logging.ERROR


async def hostile_hub(ws: ServerConnection) -> None:
    """Answers every frame with garbage first, then the right ack."""
    garbage: list[str | bytes] = [
        "[" * 100_000,
        b"\x00binary",
        "not json",
        '{"type": "ack", "ranges": [["1", 2]]}',
        '{"type": "ack", "ranges": [[true, 2]]}',
        '{"type": "ack", "ranges": [[0, %s]]}' % ("9" * 4000),
        '{"type": "error", "seq": "x", "reason": 5}',
        '{"type": "time", "id": 1, "hub_ts": 1764135000}',
        '{"type": "from_the_future"}',
        json.dumps({"type": "error", "seq": None, "reason": "\x1b[2J\nCRITICAL forged"}),
    ]
    async for message in ws:
        for frame in garbage:
            await ws.send(frame)
        seqs = [r.seq for r in parse_device_frame(message).readings if r.seq is not None]
        await ws.send(json.dumps({"type": "ack", "ranges": seq_ranges(seqs)}))


async def test_garbage_from_the_hub_is_dropped_counted_and_the_backlog_drains(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    await outbox.append([grid_reading(n, T0) for n in range(20)], boot="b")
    uplink: Uplink
    with caplog.at_level(logging.DEBUG, logger="edge.uplink"):
        async with serve(hostile_hub, "127.0.0.1", 0, max_size=2**20) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            async with uplink_running(outbox, url, "secret", FAST) as uplink:
                await drained(outbox)
                status = uplink.status()
    assert status.acked == 20
    assert status.connected
    assert status.bad_hub_frames >= 9 * 1  # every garbage frame of at least one round
    assert status.refused >= 1
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "\n" in m or "\x1b" in m]
    assert any("\\x1b[2J\\nCRITICAL forged" in m for m in messages)
    assert not [r for r in caplog.records if r.exc_info]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


async def test_the_real_hub_refuses_one_reading_and_the_rest_drain(
    hub: HubProcess, outbox: Outbox
) -> None:
    token = await asyncio.to_thread(hub.token_add, "edge_refused")
    await outbox.append([grid_reading(n, T0) for n in range(3)], boot="b")
    await outbox.append([bad_name_reading(3)], boot="b")
    await outbox.append([grid_reading(n, T0) for n in range(4, 6)], boot="b")
    settings = dataclasses.replace(FAST, ack_timeout_s=15.0)
    async with uplink_running(
        outbox, f"{hub.url}/ws/device/edge_refused", token, settings
    ) as uplink:
        await drained(outbox)
        await until(lambda: uplink.status().refused == 1)
        status = uplink.status()
    assert (status.acked, status.refused, status.given_up) == (6, 1, 0)
    rows = await asyncio.to_thread(
        hub.readings,
        "edge_refused",
        start=T0 - timedelta(minutes=1),
        end=datetime.now(UTC) + timedelta(minutes=1),
    )
    assert [row["seq"] for row in rows] == [0, 1, 2, 4, 5]


async def test_a_reading_the_hub_keeps_failing_on_is_isolated_and_parked(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A hub with a bug reading 7 triggers: it closes with 1011 whenever 7 arrives."""
    await outbox.append([grid_reading(n, T0) for n in range(20)], boot="b")
    stored: set[int] = set()
    frames: list[list[int]] = []

    async def failing_on_seven(ws: ServerConnection) -> None:
        async for message in ws:
            seqs = [r.seq for r in parse_device_frame(message).readings if r.seq is not None]
            frames.append(seqs)
            if 7 in seqs:
                await ws.close(1011, "internal error")
                return
            stored.update(seqs)
            await ws.send(json.dumps({"type": "ack", "ranges": seq_ranges(seqs)}))

    with caplog.at_level(logging.INFO, logger="edge.uplink"):
        async with serve(failing_on_seven, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            async with uplink_running(outbox, url, "secret", FAST) as uplink:
                await drained(outbox)
                # A live reading after that goes out as usual.
                uplink.offer(await outbox.append([grid_reading(20, T0)], boot="b"))
                await drained(outbox)
                status = uplink.status()
    assert stored == set(range(21)) - {7}
    assert sum(seqs == [7] for seqs in frames) == 3  # alone in flight, three times
    assert (status.parked, status.given_up) == (1, 0)
    assert any("parked reading seq 7" in r.getMessage() for r in caplog.records)
    assert any("at full speed again" in r.getMessage() for r in caplog.records)
    # Parked, not lost: kept in the buffer, and back in the outbox at the next start.
    assert (await outbox.status()).parked == 1
    assert await outbox.unpark() == 1
    assert [s.seq for s in await outbox.page(after_seq=-1, limit=10)] == [7]
    assert (await outbox.status()).parked == 0
