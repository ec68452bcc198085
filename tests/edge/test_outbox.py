"""The outbox on real SQLite files: seq allocation, held readings, the size bound, SIGKILL."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.outbox import (
    NewReading,
    Outbox,
    OutboxError,
    read_status,
    rows_to_drop,
    ts_us_of,
    wire_ts,
)
from telemetry import format_ts, parse_device_frame

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)


def reading(n: int, *, held: bool = False, pad: int = 0) -> NewReading:
    body = {"grid": {"power_w": float(n), "voltage_v": 230.0}}
    if pad:
        body["extra"] = {f"pad{i}": float(i) for i in range(pad)}
    ts_us = None if held else ts_us_of(T0 + timedelta(seconds=n))
    return NewReading(mono=float(n), body=json.dumps(body), ts_us=ts_us)


def test_rows_to_drop() -> None:
    assert rows_to_drop(used_bytes=900, max_bytes=1000, rows=10) == 0
    assert rows_to_drop(used_bytes=1000, max_bytes=1000, rows=10) == 0
    # 110 bytes per row; down to 900 bytes means freeing 200: 1.8 rows, so two.
    assert rows_to_drop(used_bytes=1100, max_bytes=1000, rows=10) == 2
    # 120 bytes per row, 300 to free: 2.5 rows, so three.
    assert rows_to_drop(used_bytes=1200, max_bytes=1000, rows=10) == 3
    assert rows_to_drop(used_bytes=10_000, max_bytes=1000, rows=10) == 10
    assert rows_to_drop(used_bytes=10_000, max_bytes=1000, rows=0) == 0


async def test_seq_increases_without_gaps_across_reopens_and_an_emptied_buffer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "buffer.db"
    async with Outbox.open(path, max_bytes=1 << 30) as outbox:
        first = await outbox.append([reading(i) for i in range(3)], boot="b")
        assert [s.seq for s in first] == [0, 1, 2]
        second = await outbox.append([reading(3)], boot="b")
        assert [s.seq for s in second] == [3]
        assert await outbox.delete(range(4), acked_at=T0) == 4
        assert (await outbox.status()).depth == 0
    async with Outbox.open(path, max_bytes=1 << 30) as outbox:
        again = await outbox.append([reading(4), reading(5)], boot="b")
        assert [s.seq for s in again] == [4, 5]
        status = await outbox.status()
        assert (status.depth, status.last_seq, status.last_ack) == (2, 5, T0)


async def test_the_wire_form_is_a_valid_reading_with_its_seq_and_ts(tmp_path: Path) -> None:
    async with Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox:
        (stored,) = await outbox.append([reading(7)], boot="b")
        parsed = parse_device_frame(stored.wire(), now=T0 + timedelta(minutes=1))
        assert parsed.rejected == ()
        (wire,) = parsed.readings
        assert wire.seq == stored.seq == 0
        assert wire.ts == T0 + timedelta(seconds=7)
        assert wire.grid is not None
        assert wire.grid.power_w == 7.0


async def test_pages_are_oldest_first_and_skip_held_readings(tmp_path: Path) -> None:
    async with Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox:
        await outbox.append([reading(i, held=i % 2 == 1) for i in range(10)], boot="b")
        page = await outbox.page(after_seq=-1, limit=3)
        assert [s.seq for s in page] == [0, 2, 4]
        page = await outbox.page(after_seq=4, limit=100)
        assert [s.seq for s in page] == [6, 8]
        assert [s.seq for s in await outbox.fetch([1, 2, 3, 8, 9, 42])] == [2, 8]
        status = await outbox.status()
        assert (status.depth, status.held) == (10, 5)
        assert status.oldest_ts == T0


async def test_held_readings_are_restamped_from_their_monotonic_time(tmp_path: Path) -> None:
    async with Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox:
        await outbox.append([reading(i, held=True) for i in range(3)], boot="this")
        await outbox.append([reading(9, held=True)], boot="earlier")
        assert await outbox.page(after_seq=-1, limit=10) == []
        offset = T0.timestamp() + 0.25
        assert await outbox.restamp(boot="this", offset=offset) == 3
        stamped = await outbox.page(after_seq=-1, limit=10)
        assert [s.ts for s in stamped] == [T0 + timedelta(seconds=i + 0.25) for i in range(3)]
        assert all("clock" not in json.loads(s.body) for s in stamped)
        assert await outbox.drop_unstampable(boot="this") == 1
        status = await outbox.status()
        assert (status.depth, status.held, status.dropped) == (3, 0, 1)


async def test_a_restamp_names_the_clock_that_gave_the_time(tmp_path: Path) -> None:
    async with Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox:
        await outbox.append([reading(i, held=True) for i in range(2)], boot="this")
        assert await outbox.restamp(boot="this", offset=T0.timestamp(), clock="hub") == 2
        stamped = await outbox.page(after_seq=-1, limit=10)
        assert [json.loads(s.wire())["clock"] for s in stamped] == ["hub", "hub"]
        assert [json.loads(s.wire())["seq"] for s in stamped] == [0, 1]


async def test_a_full_buffer_drops_the_oldest_counts_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    max_bytes = 200 * 1024
    async with Outbox.open(tmp_path / "b.db", max_bytes=max_bytes) as outbox:
        with caplog.at_level(logging.WARNING, logger="edge.outbox"):
            n = 0
            for _ in range(60):
                await outbox.append([reading(n + i, pad=20) for i in range(50)], boot="b")
                n += 50
        status = await outbox.status()
        assert status.dropped > 0
        assert status.depth + status.dropped == n
        assert status.used_bytes <= max_bytes
        # The newest are all kept, without a gap; the oldest went.
        page = await outbox.page(after_seq=-1, limit=n)
        assert [s.seq for s in page] == list(range(status.dropped, n))
        assert status.last_seq == n - 1
    # The outbox's own records: caplog also holds whatever another module logs
    # meanwhile (asyncio reporting an earlier test's future when it is collected).
    messages = [r.getMessage() for r in caplog.records if r.name == "edge.outbox"]
    assert messages
    assert all(m.startswith("buffer full (max 0.2 MB): dropped the ") for m in messages)
    dropped_in_logs = sum(int(m.split("dropped the ")[1].split()[0]) for m in messages)
    assert dropped_in_logs == status.dropped
    # The counter survives a restart.
    assert read_status(tmp_path / "b.db").dropped == status.dropped


async def test_status_can_be_read_beside_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with Outbox.open(path, max_bytes=1 << 30) as outbox:
        await outbox.append([reading(i) for i in range(5)], boot="b")
        await outbox.delete([0, 1], acked_at=T0 + timedelta(hours=1))
        status = read_status(path)
        assert status == await outbox.status()
        assert (status.depth, status.oldest_ts, status.last_ack, status.last_seq) == (
            3,
            T0 + timedelta(seconds=2),
            T0 + timedelta(hours=1),
            4,
        )


def test_an_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()

    async def open_it() -> None:
        async with Outbox.open(tmp_path / "dir.db", max_bytes=1 << 20):
            pass

    with pytest.raises(OutboxError, match=r"buffer '.*dir.db': "):
        asyncio.run(open_it())
    with pytest.raises(OutboxError, match="no such file"):
        read_status(tmp_path / "absent.db")


def _run_child_and_kill(path: Path, rng: random.Random) -> int:
    """Start a writer, SIGKILL it at a random moment; the last seq it reported committed."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.edge.outbox_child", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    last = -1
    try:
        for _ in range(rng.randint(5, 60)):
            line = child.stdout.readline()
            assert line, "the writer exited"
            last = int(line)
        # Mid-write: let it run on a few milliseconds, then kill without warning.
        time.sleep(rng.uniform(0.0, 0.02))
        child.send_signal(signal.SIGKILL)
        # What it printed before dying was committed too.
        for line in child.stdout.read().splitlines():
            last = int(line)
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return last


@pytest.mark.slow
def test_sigkill_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    rng = random.Random(4)
    committed = -1
    for _ in range(4):
        last = _run_child_and_kill(path, rng)
        assert last > committed
        committed = last
        db = sqlite3.connect(path)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            seqs = [row[0] for row in db.execute("SELECT seq FROM outbox ORDER BY seq")]
            bodies = [json.loads(row[0]) for row in db.execute("SELECT body FROM outbox")]
        finally:
            db.close()
        # Everything reported committed is there; nothing is missing in between.
        assert seqs[-1] >= committed
        assert seqs == list(range(len(seqs)))
        assert all("grid" in body for body in bodies)

    async def append_one() -> int:
        async with Outbox.open(path, max_bytes=1 << 30) as outbox:
            (stored,) = await outbox.append([reading(0)], boot="b")
            return stored.seq

    assert asyncio.run(append_one()) == seqs[-1] + 1


async def _cancel_after(task: asyncio.Task[object], *, yields: int, seconds: float) -> bool:
    """Let ``task`` run ``yields`` loop turns and ``seconds``, cancel it; whether it finished."""
    for _ in range(yields):
        await asyncio.sleep(0)
    if seconds:
        await asyncio.sleep(seconds)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return False
    return True


async def test_a_transaction_cancelled_anywhere_ends_and_the_next_one_begins(
    tmp_path: Path,
) -> None:
    """aiosqlite runs a statement in its thread whatever happens to the await: a BEGIN or
    COMMIT whose await is cancelled still runs. Whatever the moment of the cancellation,
    the batch is stored whole or not at all, and the next transaction begins."""
    rng = random.Random(11)
    size = 20
    async with Outbox.open(tmp_path / "b.db", max_bytes=1 << 30) as outbox:
        began = time.perf_counter()
        await outbox.append([reading(i) for i in range(size)], boot="b")
        took = time.perf_counter() - began  # one transaction here, fsyncs included
        batches = [(0, size, True)]  # (first value, count, whether append returned)
        n = size
        for attempt in range(80):
            task = asyncio.create_task(
                outbox.append([reading(n + i) for i in range(size)], boot="b")
            )
            # Early on, loop turns (BEGIN, the INSERTs); later, moments up to the COMMIT.
            yields, seconds = (attempt, 0.0) if attempt < 30 else (0, rng.uniform(0, 1.5 * took))
            batches.append((n, size, await _cancel_after(task, yields=yields, seconds=seconds)))
            n += size
            # The next transaction begins (it did not: "cannot start a transaction
            # within a transaction") and commits.
            (single,) = await outbox.append([reading(n)], boot="b")
            batches.append((n, 1, True))
            n += 1
        stored = await outbox.page(after_seq=-1, limit=10 * n)
        status = await outbox.status()
    values = [int(json.loads(s.body)["grid"]["power_w"]) for s in stored]
    # No gap in seq, the counter agrees, in order, each reading once.
    assert [s.seq for s in stored] == list(range(len(stored)))
    assert status.last_seq == single.seq == len(stored) - 1
    assert values == sorted(set(values))
    rolled_back = 0
    for first, count, returned in batches:
        in_store = [v for v in values if first <= v < first + count]
        assert len(in_store) in (0, count), f"batch {first} stored in part: {in_store}"
        if returned:
            assert in_store, f"batch {first} returned but is not stored"
        rolled_back += not in_store
    # Some cancellations did land inside a transaction (else this tested nothing).
    assert rolled_back > 0


def test_the_wire_timestamp_is_telemetrys_format() -> None:
    rng = random.Random(2)
    instants = [rng.randrange(ts_us_of(T0), ts_us_of(T0) + 10**15) for _ in range(20_000)]
    instants += [ts_us_of(T0), ts_us_of(T0) + 100_000, ts_us_of(T0) + 1, ts_us_of(T0) + 999_999]
    for ts_us in instants:
        expected = format_ts(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_us))
        assert wire_ts(ts_us) == expected


async def test_parked_readings_leave_the_queue_and_come_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    async with Outbox.open(path, max_bytes=10_000_000) as outbox:
        stored = await outbox.append([reading(n) for n in range(5)], boot="b")
        assert await outbox.park([stored[2].seq], reason="hub_error", at=datetime.now(UTC)) == 1
        assert [s.seq for s in await outbox.page(after_seq=-1, limit=10)] == [0, 1, 3, 4]
        status = await outbox.status()
        assert (status.depth, status.parked) == (4, 1)
    # `ems edge status` reads the file on its own, beside a running agent.
    assert read_status(path).parked == 1
    async with Outbox.open(path, max_bytes=10_000_000) as outbox:
        assert await outbox.unpark() == 1
        back = await outbox.page(after_seq=-1, limit=10)
        assert [s.seq for s in back] == [0, 1, 2, 3, 4]
        assert back[2] == stored[2]  # the same seq, time and body
        assert (await outbox.status()).parked == 0
