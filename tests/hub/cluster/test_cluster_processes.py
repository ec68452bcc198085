"""Hub processes under load: SIGKILL of one, a rolling restart of all, a paused hub fenced.

Three ``ems hub serve --cluster`` processes on ephemeral ports share the run's
PostgreSQL database and a private Redis. Devices (tests/hub/cluster/load.py)
stream numbered readings and move to another hub when theirs goes, sending
again what was not acked, as the edge agent does; dashboards follow them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.hub.cluster.load import Publisher, Watcher
from tests.hub.cluster.processes import HubProcess, add_tokens, stored_seqs
from tests.support.hub import device_id, reading
from tests.support.polling import until
from tests.support.redis import RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture
async def processes(
    postgres_url: str, redis: RedisServer, tmp_path: Path
) -> AsyncIterator[list[HubProcess]]:
    hubs = [HubProcess(f"hub{i}", tmp_path / f"hub{i}", postgres_url, redis.url) for i in range(3)]
    try:
        for running in hubs:
            await running.start()
        yield hubs
    finally:
        for running in hubs:
            running.ensure_stopped()


@contextlib.asynccontextmanager
async def streaming(
    publishers: list[Publisher], watchers: list[Watcher]
) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        for one in [*publishers, *watchers]:
            group.create_task(one.run(stop))
        try:
            yield stop
        finally:
            stop.set()


async def _all_acked(publishers: list[Publisher], within: float = 60.0) -> None:
    for publisher in publishers:
        publisher.sending = False
    await until(lambda: all(not p.unacked() for p in publishers), within=within)


async def _check_stored(postgres_url: str, tmp_path: Path, publishers: list[Publisher]) -> None:
    for publisher in publishers:
        stored = await stored_seqs(postgres_url, tmp_path / "check", publisher.device_id)
        assert len(stored) == len(set(stored)), "a reading stored twice"
        assert publisher.acked <= set(stored), "an acked reading is not stored"
        assert set(stored) <= publisher.sent


async def _read_until_closed(client: Any, frames: list[dict[str, Any]]) -> None:
    async with asyncio.timeout(20):
        while True:
            frames.append(json.loads(await client.recv()))


async def test_a_hub_killed_under_load_loses_nothing_acked_and_stores_nothing_twice(
    processes: list[HubProcess], postgres_url: str, tmp_path: Path
) -> None:
    devices = [device_id() for _ in range(6)]
    tokens = await add_tokens(postgres_url, tmp_path / "tokens", devices)
    urls = [p.ws for p in processes]
    publishers = [Publisher(d, tokens[d], urls, start=i % 3) for i, d in enumerate(devices)]
    watchers = [Watcher(d, urls, start=(i + 1) % 3) for i, d in enumerate(devices)]
    async with streaming(publishers, watchers):
        await until(lambda: all(len(p.acked) > 50 for p in publishers))
        victims = [p for p in publishers if p.connects[-1][1] == 0]
        assert victims
        acked_before = {p.device_id: len(p.acked) for p in publishers}
        # Dashboards at the killed hub (never moved: connected once, to their start).
        orphans = [w for w in watchers if w.start == 0 and w.connects == 1]
        assert orphans
        seen_before = {w.device_id: len(w.seqs) for w in watchers}
        killed_at = time.monotonic()
        processes[0].kill()
        # Its devices stream again through the other hubs.
        await until(lambda: all(len(p.acked) > acked_before[p.device_id] + 50 for p in victims))
        back = [min(t for t in p.acks_at if t > killed_at) for p in victims]
        assert all(p.connects[-1][1] != 0 for p in victims)
        # Every dashboard follows its device again, those of the killed hub from another.
        await until(lambda: all(len(w.seqs) > seen_before[w.device_id] + 50 for w in watchers))
        assert all(w.connects >= 2 for w in orphans)
        await _all_acked(publishers)
    await _check_stored(postgres_url, tmp_path, publishers)
    # Acked again by another hub within seconds (reconnect, claim, commit).
    assert max(back) - killed_at < 10.0


async def test_a_rolling_restart_of_three_hubs_under_load_loses_nothing(
    processes: list[HubProcess], postgres_url: str, tmp_path: Path
) -> None:
    devices = [device_id() for _ in range(6)]
    tokens = await add_tokens(postgres_url, tmp_path / "tokens", devices)
    urls = [p.ws for p in processes]
    publishers = [Publisher(d, tokens[d], urls, start=i % 3) for i, d in enumerate(devices)]
    watchers = [Watcher(d, urls, start=(i + 1) % 3) for i, d in enumerate(devices)]
    async with streaming(publishers, watchers):
        for running in processes:
            await until(lambda: all(len(p.acked) > 30 for p in publishers))
            assert await running.stop() == 0
            await running.start()  # the same port: the load balancer's view is unchanged
            marks = {p.device_id: len(p.acked) for p in publishers}
            await until(lambda m=marks: all(len(p.acked) > m[p.device_id] + 30 for p in publishers))
        await _all_acked(publishers)
    await _check_stored(postgres_url, tmp_path, publishers)
    assert all(w.connects >= 1 and w.seqs for w in watchers)


async def test_a_paused_hub_neither_commits_nor_acks_once_its_device_moved(
    processes: list[HubProcess], postgres_url: str, tmp_path: Path
) -> None:
    a, b, _ = processes
    device = device_id()
    token = (await add_tokens(postgres_url, tmp_path / "tokens", [device]))[device]
    headers = {"Authorization": f"Bearer {token}"}
    old = await connect(f"{a.ws}/ws/device/{device}", additional_headers=headers)
    await old.send(json.dumps(reading(1)))
    assert json.loads(await asyncio.wait_for(old.recv(), 20))["type"] == "ack"
    a.pause()
    try:
        # Sent while its hub is paused: they wait in the kernel's buffers.
        for seq in range(2, 12):
            await old.send(json.dumps(reading(seq)))
        new = await connect(f"{b.ws}/ws/device/{device}", additional_headers=headers)
        await new.send(json.dumps(reading(100)))
        frame = json.loads(await asyncio.wait_for(new.recv(), 20))
        assert frame == {"type": "ack", "ranges": [[100, 100]]}
        await asyncio.sleep(6.0)  # past the paused hub's lease (5 s)
    finally:
        a.resume()
    # The paused hub wakes up holding readings of a device that moved: no ack, then 1008.
    frames: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed) as closed:
        await _read_until_closed(old, frames)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert [f for f in frames if f["type"] == "ack"] == []
    await asyncio.sleep(1.0)  # anything the paused hub still had would be committed by now
    stored = await stored_seqs(postgres_url, tmp_path / "check", device)
    assert sorted(stored) == [1, 100]
    await new.close()
