"""Waiting for state another task or process changes.

The bounds are generous (a loaded 2-core machine) and never what a test asserts: a test
asserts the condition, the bound only stops a test that would otherwise hang.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], bool], within: float = 30.0, step: float = 0.02) -> None:
    """Wait in the event loop until ``condition()`` holds; ``TimeoutError`` after ``within`` s."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the state belongs to another task
            await asyncio.sleep(step)


async def until_awaited(
    condition: Callable[[], Awaitable[bool]], within: float = 30.0, step: float = 0.1
) -> None:
    """As :func:`until`, for a condition that awaits (asks a server over HTTP)."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - the state belongs to a server
            await asyncio.sleep(step)


def wait_until(
    condition: Callable[[], object], within: float = 30.0, what: str = "the condition"
) -> None:
    """Block until ``condition()`` is truthy (a process's or a browser's state, no event loop);
    ``AssertionError`` naming ``what`` after ``within`` s.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {within} s waiting for {what}")
