"""The uplink against the real hub (``ems hub serve``, embedded SQLite), over loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.outbox import NewReading, Outbox
from edge.uplink import LinkEnd, UplinkSettings
from telemetry.backoff import BackoffPolicy
from tests.edge.hubproc import HubProcess, running_hub
from tests.support.edge import grid_reading, uplink_running
from tests.support.polling import until

FAST = UplinkSettings(
    backoff=BackoffPolicy(0.1, 0.5),
    kicked_backoff=BackoffPolicy(0.5, 1.0),
    auth_backoff=BackoffPolicy(0.5, 1.0),
    delete_interval_s=0.05,
    idle_wake_s=0.1,
)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


def new(n: int) -> NewReading:
    return grid_reading(n, T0)


@asynccontextmanager
async def open_outbox(path: Path) -> AsyncIterator[Outbox]:
    async with Outbox.open(path, max_bytes=1 << 30) as outbox:
        yield outbox


async def stored(hub: HubProcess, device_id: str) -> list[dict[str, object]]:
    return await asyncio.to_thread(
        hub.readings,
        device_id,
        start=T0 - timedelta(minutes=1),
        end=datetime.now(UTC) + timedelta(minutes=1),
    )


async def depth(outbox: Outbox) -> int:
    return (await outbox.status()).depth


async def drained(outbox: Outbox, within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while await depth(outbox):  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)


async def test_a_backlog_is_stored_once_each_and_deleted(hub: HubProcess, tmp_path: Path) -> None:
    token = await asyncio.to_thread(hub.token_add, "edge_drain")
    async with open_outbox(tmp_path / "b.db") as outbox:
        for start in range(0, 3000, 1000):
            await outbox.append([new(n) for n in range(start, start + 1000)], boot="b")
        async with uplink_running(outbox, f"{hub.url}/ws/device/edge_drain", token, FAST):
            await drained(outbox)
    rows = await stored(hub, "edge_drain")
    assert [row["seq"] for row in rows] == list(range(3000))
    assert len({row["ts"] for row in rows}) == 3000
    assert [row["grid"] for row in rows[:2]] == [
        {"power_w": 0.0, "voltage_v": 230.0},
        {"power_w": 1.0, "voltage_v": 230.0},
    ]
    assert all(row["grid"] == {"power_w": row["seq"], "voltage_v": 230.0} for row in rows)


async def test_a_bad_token_is_refused_and_retried_slowly(
    hub: HubProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(hub.token_add, "edge_bad")
    async with open_outbox(tmp_path / "b.db") as outbox:
        await outbox.append([new(0)], boot="b")
        with caplog.at_level(logging.INFO, logger="edge.uplink"):
            async with uplink_running(
                outbox, f"{hub.url}/ws/device/edge_bad", "not-the-token", FAST
            ) as uplink:
                await until(lambda: uplink.status().last_end is LinkEnd.AUTH_REFUSED)
                await asyncio.sleep(1.5)
        assert await depth(outbox) == 1
    attempts = [r for r in caplog.records if "refused the device token" in r.getMessage()]
    # auth backoff: 0.25-0.5 s, then 0.5-1 s: a handful in ~1.5 s, never a spin.
    assert 1 <= len(attempts) <= 6
    assert await stored(hub, "edge_bad") == []


async def test_a_second_agent_with_the_same_id_kicks_the_first_and_nothing_is_lost(
    hub: HubProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = await asyncio.to_thread(hub.token_add, "edge_ghost")
    url = f"{hub.url}/ws/device/edge_ghost"
    slow_return = dataclasses.replace(FAST, kicked_backoff=BackoffPolicy(5.0, 10.0))
    async with (
        open_outbox(tmp_path / "a.db") as first_box,
        open_outbox(tmp_path / "b.db") as second_box,
    ):
        await first_box.append([new(n) for n in range(100)], boot="a")
        with caplog.at_level(logging.INFO, logger="edge.uplink"):
            async with uplink_running(first_box, url, token, slow_return) as first:
                await drained(first_box)
                await until(lambda: first.status().connected)
                async with uplink_running(second_box, url, token, FAST) as second:
                    await until(lambda: first.status().last_end is LinkEnd.KICKED)
                    assert second.status().connected
                    assert not first.status().connected
                    # The first waits out its long backoff; the second streams meanwhile.
                    await second_box.append([new(n) for n in range(100, 200)], boot="b")
                    second.offer(await second_box.page(after_seq=-1, limit=200))
                    await drained(second_box)
    assert any(
        "1008" in r.getMessage() and "another agent" in r.getMessage() for r in caplog.records
    )
    rows = await stored(hub, "edge_ghost")
    assert len(rows) == 200
    assert len({row["ts"] for row in rows}) == 200


async def test_a_revoked_token_closes_the_link_and_is_not_retried_fast(
    hub: HubProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = await asyncio.to_thread(hub.token_add, "edge_revoked")
    url = f"{hub.url}/ws/device/edge_revoked"
    async with (
        open_outbox(tmp_path / "b.db") as outbox,
        uplink_running(outbox, url, token, FAST) as uplink,
    ):
        await until(lambda: uplink.status().connected)
        with caplog.at_level(logging.INFO, logger="edge.uplink"):
            await asyncio.to_thread(hub.token_revoke, "edge_revoked")
            await until(lambda: uplink.status().last_end is LinkEnd.KICKED)
            await until(lambda: uplink.status().last_end is LinkEnd.AUTH_REFUSED, within=60)
            await asyncio.sleep(1.5)
        assert not uplink.status().connected
    refusals = [r for r in caplog.records if "refused the device token" in r.getMessage()]
    # After the 1008 the kicked backoff (0.25-0.5 s), then the auth backoff: a few tries.
    assert 1 <= len(refusals) <= 6


async def test_the_hub_restarting_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = HubProcess(tmp_path / "hub")
    hub.start()
    try:
        token = await asyncio.to_thread(hub.token_add, "edge_restart")
        url = f"{hub.url}/ws/device/edge_restart"
        async with (
            open_outbox(tmp_path / "b.db") as outbox,
            uplink_running(outbox, url, token, FAST) as up,
        ):
            with caplog.at_level(logging.INFO, logger="edge.uplink"):
                await outbox.append([new(n) for n in range(500)], boot="b")
                await drained(outbox)
                assert await asyncio.to_thread(hub.stop) == 0  # SIGTERM: clean, 1001
                await until(lambda: not up.status().connected)
                assert any("going away (1001)" in r.getMessage() for r in caplog.records)
                await outbox.append([new(n) for n in range(500, 1000)], boot="b")
                await asyncio.sleep(1.0)
                assert await depth(outbox) == 500  # nothing acked while the hub is down
                await asyncio.to_thread(hub.start)
                await drained(outbox)
        rows = await stored(hub, "edge_restart")
        assert [row["seq"] for row in rows] == list(range(1000))
    finally:
        hub.stop()
