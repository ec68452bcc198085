"""The uplink's hub-time rounds against real websockets servers: one answers, one is too old."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

from edge.hubtime import HubClock, Refusal
from edge.outbox import Outbox
from edge.uplink import Uplink, UplinkSettings
from telemetry import parse_device_frame, seq_ranges
from telemetry.timesync import TimeRequest, time_frame
from tests.support.edge import grid_reading
from tests.support.polling import until

FAST = UplinkSettings(time_spacing_s=0.01, time_answer_s=0.3, time_retry_s=0.2)
HUB_AHEAD = timedelta(hours=3)  # the test hub's clock, three hours ahead of this machine's


@asynccontextmanager
async def door(*, knows_time: bool) -> AsyncIterator[tuple[str, list[int]]]:
    """A device door that acks readings; ``knows_time``: it answers time requests."""
    requests: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            assert isinstance(message, str)
            if '"time_request"' in message:
                requests.append(TimeRequest.model_validate_json(message).id)
                if knows_time:
                    await ws.send(time_frame(requests[-1], datetime.now(UTC) + HUB_AHEAD))
                continue  # an older hub drops it (counted as an unknown frame type)
            seqs = [r.seq for r in parse_device_frame(message).readings if r.seq is not None]
            if seqs:
                await ws.send(json.dumps({"type": "ack", "ranges": seq_ranges(seqs)}))

    async with serve(handler, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", requests


@asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[Uplink]:
    task = asyncio.create_task(uplink.run(), name="test.uplink")
    try:
        yield uplink
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_uplink_measures_the_hubs_clock_while_wanted(tmp_path: Path) -> None:
    hub_clock = HubClock()
    async with (
        Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox,
        door(knows_time=True) as (url, requests),
    ):
        uplink = Uplink(
            outbox, url=url, token="t", settings=FAST, rng=random.Random(1), hub_clock=hub_clock
        )
        async with running(uplink):
            await asyncio.sleep(0.5)
            assert requests == []  # not wanted: an agent with NTP never asks
            hub_clock.wanted = True
            await until(lambda: hub_clock.trusted is not None)
    measured = hub_clock.trusted
    assert measured is not None
    assert len(requests) >= 8
    # wall = monotonic + offset: the test hub's clock, within the bound.
    hub_now = datetime.now(UTC) + HUB_AHEAD
    assert abs(time.monotonic() + measured.offset - hub_now.timestamp()) <= measured.bound + 0.05


async def test_a_hub_that_never_answers_leaves_the_clock_untrusted_and_readings_flowing(
    tmp_path: Path,
) -> None:
    hub_clock = HubClock()
    hub_clock.wanted = True
    t0 = datetime.now(UTC)
    async with (
        Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox,
        door(knows_time=False) as (url, requests),
    ):
        await outbox.append([grid_reading(n, t0) for n in range(5)], boot="b")
        uplink = Uplink(
            outbox, url=url, token="t", settings=FAST, rng=random.Random(1), hub_clock=hub_clock
        )
        async with running(uplink):
            await until(lambda: len(requests) >= 16)  # two rounds, both unanswered
            await until(lambda: uplink.status().acked == 5)
        assert (await outbox.status()).depth == 0
    assert hub_clock.trusted is None
    assert hub_clock.last_refusal is not None
    assert hub_clock.last_refusal.reason is Refusal.TOO_FEW
