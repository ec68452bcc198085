"""The device door's time frames over real sockets (docs/protocol.md, "Time")."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from telemetry.timesync import TimeFrame, time_request
from tests.support.hub import RunningHub, device_id, reading, recv_json


async def test_a_time_request_is_answered_with_the_hubs_clock(sqlite_hub: RunningHub) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    loop = asyncio.get_running_loop()
    for request_id in (1, 2, 2**53 - 1):
        before, sent = datetime.now(UTC), loop.time()
        await device.send(time_request(request_id))
        async with asyncio.timeout(20):
            answer = TimeFrame.model_validate_json(await device.recv())
        rtt, after = loop.time() - sent, datetime.now(UTC)
        assert answer.id == request_id
        # The hub read its clock (this machine's) between our send and its answer.
        assert before <= answer.hub_ts <= after
        assert (after - before).total_seconds() <= rtt + 0.01


async def test_readings_naming_their_clock_are_accepted_beside_time_requests(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    await device.send(json.dumps(reading(1, clock="hub")))
    await device.send(time_request(7))
    await device.send(json.dumps(reading(2, clock="ntp")))
    answers: list[dict[str, object]] = []
    acked: set[int] = set()
    async with asyncio.timeout(20):
        while not ({1, 2} <= acked and answers):
            frame = json.loads(await device.recv())
            if frame["type"] == "time":
                answers.append(frame)
            else:
                assert frame["type"] == "ack", frame
                for first, last in frame["ranges"]:
                    acked.update(range(first, last + 1))
    assert [answer["id"] for answer in answers] == [7]
    assert [row["seq"] for row in await sqlite_hub.stored(me)] == [1, 2]


async def test_a_malformed_time_request_is_refused_as_a_bad_frame(sqlite_hub: RunningHub) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    await device.send(json.dumps({"type": "time_request", "id": "seven"}))
    await device.send(json.dumps({"type": "time_request"}))
    await device.send(json.dumps(reading(3)))
    frame = await recv_json(device)  # the ack of 3: no time frame before it
    assert (frame["type"], frame["ranges"]) == ("ack", [[3, 3]])
    metrics = await sqlite_hub.metrics()
    assert metrics['ems_invalid_total{reason="not_an_object"}'] == 2
