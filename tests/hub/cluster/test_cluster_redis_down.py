"""Redis down: each hub serves its own devices and dashboards, says so, and converges after.

Real hubs sharing the run's database and a private Redis that the test stops and
starts again on the same port (tests/support/redis.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.hub.cluster.conftest import close_code, token_everywhere
from tests.support.hub import RunningHub, device_id, reading, recv_ack_seqs, recv_json
from tests.support.polling import until
from tests.support.redis import RedisServer


async def _ready(running: RunningHub) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{running.http}/readyz")
    return answer.status_code, answer.json()


async def test_without_redis_each_hub_serves_its_own_and_the_cluster_converges_after(
    hubs: list[RunningHub], redis: RedisServer
) -> None:
    a, b, _ = hubs
    here, twice = device_id(), device_id()
    tokens = {d: await token_everywhere(hubs, d) for d in (here, twice)}
    assert await _ready(a) == (200, {"status": "ready"})

    redis.stop()
    await until(lambda: all(r.hub._cluster is not None and not r.hub._cluster.up for r in hubs))
    status, body = await _ready(a)
    assert status == 200
    assert body["status"] == "degraded"
    assert "Redis" in body["reason"]
    metrics = await a.metrics()
    assert metrics["ems_cluster_up"] == 0
    assert metrics["ems_cluster_redis_errors_total"] >= 1

    # Local fan-out, acks after commits, the local ghost protocol: as a hub alone.
    dashboard = await a.dashboard(here)
    assert (await recv_json(dashboard))["online"] is False
    agent = await a.device(here, tokens[here])
    assert (await recv_json(dashboard))["online"] is True
    for seq in range(1, 11):
        await agent.send(json.dumps(reading(seq)))
    assert [(await recv_json(dashboard))["seq"] for _ in range(10)] == list(range(1, 11))
    assert await recv_ack_seqs(agent, set(range(1, 11))) >= set(range(1, 11))
    replacement = await a.device(here, tokens[here])
    assert await close_code(agent, within=5.0) == 1008
    # The same device at two hubs while they cannot tell each other.
    first = await a.device(twice, tokens[twice])
    second = await b.device(twice, tokens[twice])
    await until(lambda: a.hub.reader.is_online(twice) and b.hub.reader.is_online(twice))

    redis.start()
    await until(lambda: all(r.hub._cluster is not None and r.hub._cluster.up for r in hubs))
    assert await _ready(a) == (200, {"status": "ready"})
    # Converged: one socket per device in the whole cluster, the others closed with 1008.
    codes = await asyncio.gather(close_code(first, 10.0), close_code(second, 10.0))
    assert sorted(codes, key=str) == [1008, None]

    def registered(device: str) -> int:
        return sum(r.hub.reader.is_online(device) for r in hubs)

    await until(lambda: registered(twice) == 1)
    assert registered(here) == 1
    # A dashboard at another hub follows the device connected during the outage.
    remote = await b.dashboard(here)
    status_frame = await recv_json(remote)
    assert status_frame["online"] is True
    assert (await recv_json(remote))["seq"] == 10  # its last reading
    await replacement.send(json.dumps(reading(11)))
    assert (await recv_json(remote))["seq"] == 11
    assert await recv_ack_seqs(replacement, {11}) >= {11}
