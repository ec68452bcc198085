"""Several hubs, one switchboard: a dashboard at any hub follows a device at any other.

Real hubs (uvicorn on ephemeral ports) sharing the run's PostgreSQL database and
a private Redis; clients connect to the hub each test chooses.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed

from hub.cluster.wire import Code, DeviceMessage, device_channel
from tests.hub.cluster.conftest import token_everywhere
from tests.support.hub import RunningHub, device_id, reading, recv_json
from tests.support.polling import until
from tests.support.redis import RedisServer


async def _frames_until(client: Any, count: int, within: float = 30.0) -> list[dict[str, Any]]:
    frames = []
    while len(frames) < count:
        frames.append(await recv_json(client, within))
    return frames


async def _until_closed(client: Any, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:
            await client.recv()


async def test_a_dashboard_on_one_hub_gets_a_device_on_another_in_order(
    hubs: list[RunningHub],
) -> None:
    a, b, c = hubs
    device = device_id()
    token = await token_everywhere(hubs, device)
    remote = await b.dashboard(device)
    first = await recv_json(remote)
    assert first["type"] == "status"
    assert first["online"] is False
    local = await a.dashboard(device)
    assert (await recv_json(local))["type"] == "status"

    agent = await a.device(device, token)
    online_remote = await recv_json(remote)
    online_local = await recv_json(local)
    assert online_remote == online_local
    assert online_remote["online"] is True

    for seq in range(1, 201):
        await agent.send(json.dumps(reading(seq)))
    got_remote = await _frames_until(remote, 200)
    got_local = await _frames_until(local, 200)
    assert [f["seq"] for f in got_remote] == list(range(1, 201))
    assert got_remote == got_local  # the very frames a dashboard at the device's hub gets

    # A dashboard opened later at a third hub: status, the last reading, then live ones.
    late = await c.dashboard(device)
    status = await recv_json(late)
    assert status == online_local
    last = await recv_json(late)
    assert last == got_local[-1]
    # A second dashboard at a hub that follows the device already: the same start.
    again = await b.dashboard(device)
    assert await recv_json(again) == online_local
    assert await recv_json(again) == got_local[-1]
    await agent.send(json.dumps(reading(201)))
    assert (await recv_json(late))["seq"] == 201
    assert (await recv_json(again))["seq"] == 201
    assert (await recv_json(remote))["seq"] == 201
    assert (await recv_json(local))["seq"] == 201

    await agent.close()
    offline = await recv_json(remote)
    assert offline["type"] == "status"
    assert offline["online"] is False
    assert offline == await recv_json(local)
    assert offline == await recv_json(late)


async def test_readings_go_only_to_hubs_that_watch_the_device(hubs: list[RunningHub]) -> None:
    a, b, _ = hubs
    watched, unwatched = device_id(), device_id()
    tokens = {d: await token_everywhere(hubs, d) for d in (watched, unwatched)}
    dashboard = await b.dashboard(watched)
    await recv_json(dashboard)
    agents = {d: await a.device(d, tokens[d]) for d in (watched, unwatched)}
    assert (await recv_json(dashboard))["online"] is True
    link = a.hub._cluster
    assert link is not None
    before = link.counters.frames_forwarded
    for seq in range(1, 51):
        for agent in agents.values():
            await agent.send(json.dumps(reading(seq)))
    frames = await _frames_until(dashboard, 50)
    assert [f["seq"] for f in frames] == list(range(1, 51))
    await until(lambda: a.hub._writer.stats().rows_committed_total >= 100)
    # Only the watched device's 50 frames went out, in far fewer messages (batched).
    assert link.counters.frames_forwarded - before == 50
    assert link.forwarding() == 1


STREAMED = 1_000  # readings
CHUNK = 20  # sent back to back, then a 10 ms pause: about 2,000 readings/s


async def test_a_streaming_device_crosses_redis_in_batches(
    hubs: list[RunningHub], redis: RedisServer
) -> None:
    a, b, _ = hubs
    device = device_id()
    token = await token_everywhere(hubs, device)
    dashboard = await b.dashboard(device)
    await recv_json(dashboard)
    agent = await a.device(device, token)
    assert (await recv_json(dashboard))["online"] is True
    # A subscriber of our own on the device's channel: what Redis carried for it.
    client = Redis.from_url(redis.url)
    pubsub = client.pubsub()
    await pubsub.subscribe(device_channel(device))
    assert (await pubsub.get_message(timeout=5.0) or {}).get("type") == "subscribe"
    link = a.hub._cluster
    assert link is not None
    published, forwarded = link.counters.messages_published, link.counters.frames_forwarded

    for seq in range(1, STREAMED + 1):
        await agent.send(json.dumps(reading(seq)))
        if seq % CHUNK == 0:
            await asyncio.sleep(0.01)
    frames = await _frames_until(dashboard, STREAMED)
    assert [f["seq"] for f in frames] == list(range(1, STREAMED + 1))

    messages: list[DeviceMessage] = []
    carried = 0
    async with asyncio.timeout(10):
        while carried < STREAMED:
            got = await pubsub.get_message(timeout=1.0)
            if got is not None and got["type"] == "message":
                messages.append(DeviceMessage.decode(got["data"]))
                carried += sum(code is Code.READING for code, _ in messages[-1].items)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()
    assert carried == STREAMED
    assert link.counters.frames_forwarded - forwarded == STREAMED
    assert link.counters.messages_published - published == len(messages)
    # Batched: readings that arrive within one loop turn, or while a publish is on its
    # way, go out as one message (one message a reading would be 1,000).
    sizes = sorted(len(m.items) for m in messages)
    print(f"{STREAMED} readings in {len(messages)} messages; sizes {sizes[0]}..{sizes[-1]}")
    assert len(messages) <= STREAMED / 2, sizes


async def test_api_devices_says_online_wherever_the_device_is(hubs: list[RunningHub]) -> None:
    a, _, c = hubs
    device = device_id()
    token = await token_everywhere(hubs, device)

    async def online_at(running: RunningHub) -> bool | None:
        async with httpx.AsyncClient() as http:
            answer = (await http.get(f"{running.http}/api/devices")).json()
        states = {d["device_id"]: d["online"] for d in answer}
        return states.get(device)

    assert await online_at(c) is False
    agent = await a.device(device, token)
    await agent.send(json.dumps(reading(1)))
    await until(lambda: c.hub._manager.publisher(device) is None and a.hub.reader.is_online(device))
    assert await online_at(c) is True
    await agent.close()
    await until(lambda: not a.hub.reader.is_online(device))
    # The offline status is published within a few ms of the disconnect.
    await asyncio.sleep(0.5)
    assert await online_at(c) is False


async def test_a_revoked_token_closes_the_device_at_whichever_hub_it_is(
    hubs: list[RunningHub],
) -> None:
    a, _, c = hubs
    device = device_id()
    token = await token_everywhere(hubs, device)
    agent = await a.device(device, token)
    await agent.send(json.dumps(reading(1)))
    await until(lambda: a.hub.reader.is_online(device))
    # Revoked through another hub's storage handle: the shared database is the truth.
    assert await c.storage.revoke_tokens(device) == 1
    with pytest.raises(ConnectionClosed) as closed:
        await _until_closed(agent)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
