"""Helpers the edge tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], within: float = 30.0, step: float = 0.02) -> None:
    """Wait for another task's state to satisfy ``condition``; fails after ``within`` seconds.

    The bound is generous (a loaded 2-core machine) and never what a test asserts.
    """
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the state belongs to another task
            await asyncio.sleep(step)
