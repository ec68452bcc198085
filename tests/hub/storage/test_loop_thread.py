"""LoopThread: coroutines run on its own thread and loop; results, errors and cancels come back."""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest

from hub.storage.loop_thread import LoopThread


async def _where() -> tuple[str, asyncio.AbstractEventLoop]:
    return threading.current_thread().name, asyncio.get_running_loop()


async def test_a_coroutine_runs_on_the_thread_and_its_result_comes_back() -> None:
    async with LoopThread("test-writes") as writes:
        name, loop = await writes.run(_where())
    assert name == "test-writes"
    assert loop is not asyncio.get_running_loop()


async def test_an_exception_comes_back_as_itself() -> None:
    class Boom(Exception):
        pass

    async def fail() -> None:
        raise Boom("on the thread")

    async with LoopThread("test-writes") as writes:
        with pytest.raises(Boom, match="on the thread"):
            await writes.run(fail())
        assert await writes.run(asyncio.sleep(0, result=7)) == 7  # still serving


async def test_cancelling_the_caller_cancels_the_coroutine_there() -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with LoopThread("test-writes") as writes:
        task = asyncio.create_task(writes.run(wait_forever()))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(cancelled.wait, 5)


async def test_stop_cancels_what_still_runs_and_joins_the_thread() -> None:
    writes = LoopThread("test-writes")
    writes.start()
    pending = asyncio.create_task(writes.run(asyncio.sleep(3600)))
    await asyncio.sleep(0.05)
    await writes.stop()
    assert not writes.running
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert not any(t.name == "test-writes" for t in threading.enumerate())


async def test_run_after_stop_is_refused_and_closes_the_coroutine() -> None:
    writes = LoopThread("test-writes")
    writes.start()
    await writes.stop()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="not running"):
        await writes.run(coro)
    # Closed, so no "never awaited" warning.
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_a_thread_starts_once() -> None:
    async with LoopThread("test-writes") as writes:
        with pytest.raises(RuntimeError, match="already started"):
            writes.start()
