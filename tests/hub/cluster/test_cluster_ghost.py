"""The ghost protocol across hubs: one registered socket per device, whatever hub.

Real hubs sharing the run's database and a private Redis (tests/hub/cluster/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from websockets.asyncio.client import connect

from tests.hub.cluster.conftest import close_code, token_everywhere
from tests.support.hub import RunningHub, device_id, reading, recv_ack_seqs
from tests.support.polling import until


async def test_connecting_at_another_hub_closes_the_old_socket_with_1008_within_a_second(
    hubs: list[RunningHub],
) -> None:
    a, b, _ = hubs
    device = device_id()
    token = await token_everywhere(hubs, device)
    old = await a.device(device, token)
    await old.send(json.dumps(reading(1)))
    assert await recv_ack_seqs(old, {1}) >= {1}
    loop = asyncio.get_running_loop()
    started = loop.time()
    new = await b.device(device, token)
    assert await close_code(old, within=5.0) == 1008
    assert loop.time() - started < 1.0
    await until(lambda: not a.hub.reader.is_online(device))
    assert b.hub.reader.is_online(device)
    # The new socket works, and the old hub's late disconnect did not unregister it.
    await new.send(json.dumps(reading(2)))
    assert await recv_ack_seqs(new, {2}) >= {2}
    assert b.hub.reader.is_online(device)


async def test_200_concurrent_connects_over_3_hubs_leave_exactly_one(
    hubs: list[RunningHub],
) -> None:
    device = device_id()
    token = await token_everywhere(hubs, device)
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(7)
    chosen = [rng.choice(hubs) for _ in range(200)]

    async def one(running: RunningHub) -> Any:
        return await connect(running.ws(f"/ws/device/{device}"), additional_headers=headers)

    clients = await asyncio.gather(*(one(r) for r in chosen))
    try:

        def registered() -> int:
            return sum(r.hub.reader.is_online(device) for r in hubs)

        # Every socket but one is closed with 1008; the one left stays registered.
        codes = await asyncio.gather(*(close_code(c, within=10.0) for c in clients))
        assert codes.count(None) == 1, sorted(codes, key=str)
        assert codes.count(1008) == 199
        await until(lambda: registered() == 1)
        survivor = clients[codes.index(None)]
        holder = chosen[codes.index(None)]
        assert holder.hub.reader.is_online(device)
        await asyncio.sleep(1.0)  # late disconnects and kicks have all landed
        assert registered() == 1
        await survivor.send(json.dumps(reading(1)))
        assert await recv_ack_seqs(survivor, {1}) >= {1}
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
