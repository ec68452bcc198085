"""The bus arbiter on a real event loop: the poller's cycles first, guests between them."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge.gateway_bus import BusArbiter


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
