"""An event loop on its own thread, for database round trips the hub's loop would delay.

Why: a batch commit is about a dozen round trips to PostgreSQL (BEGIN, a COPY
per slice, the INSERT, COMMIT). On the hub's event loop each answer waits
behind every ready device socket: at full load one loop iteration takes tens
of milliseconds, so a commit that takes ~80 ms alone took 300-600 ms there
(docs/benchmarks.md, "Hub"), and acks, hence the edges' windows, waited with it.
On this thread the driver's socket is served as soon as the thread gets the
GIL (at most ``sys.getswitchinterval()``, 5 ms, after the answer arrives).

It does not add CPU: the work still holds the GIL; it only stops queueing
behind unrelated callbacks.

    async with LoopThread("ems-hub-writes") as writes:
        pool = await writes.run(asyncpg.create_pool(url))
        await writes.run(write(pool, rows))

A coroutine given to :meth:`LoopThread.run` runs entirely on the thread's loop;
its result or exception comes back to the caller's loop. Cancelling the caller
cancels it there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

_STOP_TIMEOUT_S = 10.0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is in the hub extra; plain asyncio works too
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """One daemon thread running one event loop until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        loop = _new_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the thread's loop and wait for it from the caller's loop."""
        loop = self._loop
        if loop is None or not self.running:
            coro.close()
            raise RuntimeError(f"{self.name} is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def stop(self) -> None:
        """Cancel what still runs there, stop the loop, and join the thread."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(_cancel_all_and_stop, loop)
        await asyncio.to_thread(thread.join, _STOP_TIMEOUT_S)


def _cancel_all_and_stop(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if not tasks:
        loop.stop()
        return
    gathered = asyncio.gather(*tasks, return_exceptions=True)
    gathered.add_done_callback(lambda _: loop.stop())
