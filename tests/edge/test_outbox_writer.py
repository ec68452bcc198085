"""The outbox writer on a real SQLite file: grouped commits, order, restamps, bounds."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

from edge.outbox import NewReading, Outbox, Stored
from edge.outbox_writer import OutboxWriter, Restamp

T0_US = 1_800_000_000_000_000


def reading(n: int, *, held: bool = False) -> NewReading:
    body = json.dumps({"grid": {"power_w": float(n)}})
    return NewReading(mono=float(n), body=body, ts_us=None if held else T0_US + n * 1_000_000)


async def test_readings_are_committed_in_groups_and_offered_after_commit(tmp_path: Path) -> None:
    committed: list[list[int]] = []
    async with Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox:

        def offer(stored: Sequence[Stored]) -> None:
            committed.append([s.seq for s in stored])

        writer = OutboxWriter(outbox, boot="b", on_committed=offer, flush_interval_s=0.2)
        task = asyncio.create_task(writer.run())
        for n in range(10):
            writer.put(reading(n))
            await asyncio.sleep(0.01)
        async with asyncio.timeout(10):
            while writer.pending:  # noqa: ASYNC110 - the writer task's state
                await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # Ten readings 10 ms apart, a 200 ms flush interval: one or two transactions.
        assert 1 <= writer.commits <= 2
        assert [seq for group in committed for seq in group] == list(range(10))
        assert (await outbox.status()).depth == 10


async def test_a_restamp_follows_the_held_readings_it_stamps(tmp_path: Path) -> None:
    rescans: list[int] = []
    async with Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox:
        writer = OutboxWriter(outbox, boot="b", on_restamped=lambda: rescans.append(1))
        for n in range(3):
            writer.put(reading(n, held=True))
        writer.put(Restamp(1_800_000_000.0))
        writer.put(reading(3, held=True))  # held again after: stays held
        await writer.flush()
        status = await outbox.status()
        assert (status.depth, status.held) == (4, 1)
        stamped = await outbox.page(after_seq=-1, limit=10)
        assert [s.ts_us for s in stamped] == [T0_US + n * 1_000_000 for n in range(3)]
        assert rescans == [1]


async def test_memory_is_bounded_when_the_buffer_cannot_keep_up(tmp_path: Path) -> None:
    async with Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox:
        writer = OutboxWriter(outbox, boot="b", max_pending=5)
        for n in range(8):
            writer.put(reading(n))
        assert (writer.pending, writer.dropped) == (5, 3)
        await writer.flush()
        page = await outbox.page(after_seq=-1, limit=10)
        # The oldest three went; the newest five were written, in order.
        assert [json.loads(s.body)["grid"]["power_w"] for s in page] == [3.0, 4.0, 5.0, 6.0, 7.0]


async def test_cancelling_the_writer_mid_write_then_flushing_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    """SIGTERM's path: the writer task is cancelled wherever it is, then flush() writes the
    rest. Nothing raised, every reading stored once, in order, under consecutive seqs."""
    rng = random.Random(5)
    committed: list[int] = []
    async with Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox:
        writer = OutboxWriter(outbox, boot="b")
        for n in range(30):
            writer.put(reading(n))
        began = time.perf_counter()
        await writer.flush()
        took = time.perf_counter() - began  # one write of 30 readings here
        n = 30
        for attempt in range(90):
            writer = OutboxWriter(
                outbox,
                boot="b",
                on_committed=lambda stored: committed.extend(s.seq for s in stored),
                flush_interval_s=0.0,
            )
            for _ in range(30):
                writer.put(reading(n))
                n += 1
            task = asyncio.create_task(writer.run(), name="outbox.writer")
            # Loop turns (each statement is one or two), then moments across a write.
            if attempt < 40:
                for _ in range(attempt):
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep(rng.uniform(0.0, 1.5 * took))
            for _ in range(3):  # cancelled again and again, as the agent does
                task.cancel()
                await asyncio.sleep(0)
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()
            writer.put(reading(n))  # one more after the cancellation
            n += 1
            await writer.flush()
            assert writer.pending == 0
        page = await outbox.page(after_seq=-1, limit=10 * n)
        status = await outbox.status()
    assert [int(json.loads(s.body)["grid"]["power_w"]) for s in page] == list(range(n))
    assert [s.seq for s in page] == list(range(n))
    assert status.last_seq == n - 1
    # Each committed reading was offered to the uplink once.
    assert committed == list(range(30, n))
