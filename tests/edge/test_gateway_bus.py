"""The shared bus on a real event loop: the poller's cycles first, guests between them,
a device's pause between requests kept; over a real loopback Modbus server."""

from __future__ import annotations

import asyncio
import time

import pytest

from drivers.bus import BusConfig, BusType
from drivers.registers import RegisterType
from edge.gateway_bus import BusArbiter, SharedBus
from edge.gateway_cache import CacheKey, RegisterCache
from edge.settings import DeviceConfig, Role
from simulation.modbus_server import DeviceServer, DeviceSpec


async def test_a_guest_waits_for_the_cycle_under_way_and_runs_in_the_gap() -> None:
    arbiter = BusArbiter()
    log: list[str] = []
    entered = asyncio.Event()

    async def cycle() -> None:
        async with arbiter.poll():
            entered.set()
            log.append("poll start")
            await asyncio.sleep(0.05)
            log.append("poll end")
        arbiter.next_poll_at = time.monotonic() + 1.0

    async def guest() -> None:
        await entered.wait()
        async with arbiter.guest(0.01, wait_s=5.0):
            log.append("guest")

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(cycle())
        tasks.create_task(guest())
    assert log == ["poll start", "poll end", "guest"]


async def test_a_guest_that_would_overrun_the_next_cycle_waits_for_it() -> None:
    arbiter = BusArbiter()
    async with arbiter.poll():
        pass
    arbiter.next_poll_at = time.monotonic() + 0.1
    log: list[str] = []

    async def guest() -> None:
        async with arbiter.guest(0.5, wait_s=5.0):  # longer than the gap left
            log.append("guest")

    async def poller() -> None:
        await asyncio.sleep(0.1)
        async with arbiter.poll():
            log.append("poll")
            await asyncio.sleep(0.02)
        arbiter.next_poll_at = time.monotonic() + 0.1  # back to back: still too short

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(guest())
        tasks.create_task(poller())
    # It waited through a cycle, so it got the gap after it, though that is short too.
    assert log == ["poll", "guest"]


async def test_a_waiting_poller_goes_before_waiting_guests() -> None:
    arbiter = BusArbiter()
    async with arbiter.poll():
        pass
    arbiter.next_poll_at = time.monotonic() + 10.0
    log: list[str] = []
    first_in = asyncio.Event()

    async def first_guest() -> None:
        async with arbiter.guest(0.001, wait_s=5.0):
            first_in.set()
            await asyncio.sleep(0.05)
            log.append("guest 1")

    async def second_guest() -> None:
        await first_in.wait()
        async with arbiter.guest(0.001, wait_s=5.0):
            log.append("guest 2")

    async def poller() -> None:
        await first_in.wait()
        await asyncio.sleep(0)  # after the second guest queued
        async with arbiter.poll():
            log.append("poll")

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(first_guest())
        tasks.create_task(second_guest())
        tasks.create_task(poller())
    assert log == ["guest 1", "poll", "guest 2"]
    assert len(arbiter.poll_starts) == 2  # the set-up cycle and the one that went first


async def test_a_guest_gives_up_when_the_bus_stays_busy() -> None:
    arbiter = BusArbiter()
    began = time.monotonic()
    ran = False
    async with arbiter.poll():
        with pytest.raises(TimeoutError, match=r"not free within 0\.1 s"):
            async with arbiter.guest(0.001, wait_s=0.1):
                ran = True
    assert not ran
    assert 0.1 <= time.monotonic() - began < 2.0


async def test_guests_keep_a_devices_pause_between_requests_on_a_real_bus() -> None:
    """A Growatt asks for 850 ms between two requests (drivers/profiles/growatt.py):
    a gateway request right after the agent's poll waits it out; another unit does not."""
    image = {RegisterType.HOLDING: dict.fromkeys(range(10), 7)}
    devices = [DeviceSpec(1, image), DeviceSpec(2, image)]
    async with DeviceServer(devices, tcp=("127.0.0.1", 0)) as served:
        bus = BusConfig(name="lan", type=BusType.TCP, host="127.0.0.1", port=served.tcp_port)
        configs = [
            DeviceConfig(
                name="growatt", role=Role.INVERTER, profile="growatt_tlx", bus="lan", unit=1
            ),
            DeviceConfig(name="meter", role=Role.GRID, profile="eastron_sdm630", bus="lan", unit=2),
        ]
        cache = RegisterCache()
        shared = SharedBus(bus, configs, cache)
        async with shared.open() as transport:
            async with shared.arbiter.poll():
                assert await transport.read(RegisterType.HOLDING, 0, 2, unit=1) == (7, 7)
                polled_at = time.monotonic()
            shared.arbiter.next_poll_at = time.monotonic() + 10.0
            other = await shared.guest_read(RegisterType.HOLDING, 4, 1, unit=2, wait_s=5.0)
            assert other == (7,)
            assert time.monotonic() - polled_at < 0.5  # no pause asked for unit 2
            values = await shared.guest_read(RegisterType.HOLDING, 4, 2, unit=1, wait_s=5.0)
            assert values == (7, 7)
            assert time.monotonic() - polled_at >= 0.85
        assert (shared.poll_transactions, shared.guest_transactions) == (1, 2)
        # Every answer is in the cache, under its bus and unit.
        assert cache.lookup(
            CacheKey("lan", 1, RegisterType.HOLDING), 0, 2, now=time.monotonic(), max_age_s=5.0
        ) == (7, 7)
        assert not shared.is_open
