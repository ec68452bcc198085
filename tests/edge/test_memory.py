"""Freed heap memory goes back to the kernel when the agent trims (edge/memory.py)."""

from __future__ import annotations

import asyncio
import ctypes.util
from pathlib import Path

import pytest

from edge.memory import trim_heap, trim_periodically

pytestmark = pytest.mark.skipif(
    ctypes.util.find_library("c") is None or not Path("/proc/self/smaps_rollup").exists(),
    reason="glibc on Linux only",
)

MIB = 2**20


def anonymous_bytes() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no Anonymous line in smaps_rollup")


def fragment_the_heap() -> list[bytes]:
    """64 MiB of 1 KiB blocks (malloc'd: over pymalloc's 512 bytes), one in 64 kept alive."""
    blocks = [bytes(1024) for _ in range(64 * 1024)]
    return blocks[::64]  # the rest is freed, but pinned in the heap by these


def test_trimming_returns_a_fragmented_heaps_free_pages() -> None:
    kept = fragment_the_heap()
    before = anonymous_bytes()
    assert trim_heap()
    after = anonymous_bytes()
    # Nearly all of the 63 MiB freed goes back, though 1 KiB in 64 stayed alive.
    assert before - after >= 32 * MIB, (before / MIB, after / MIB)
    assert len(kept) == 1024


async def test_the_agents_trim_loop_runs_until_cancelled() -> None:
    kept = fragment_the_heap()
    before = anonymous_bytes()
    task = asyncio.create_task(trim_periodically(0.05), name="test.trim")
    await asyncio.sleep(0.3)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert before - anonymous_bytes() >= 32 * MIB
    assert len(kept) == 1024
