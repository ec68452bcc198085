"""The batch writer on real storage: batches, acks only after commit, outages, overflow, exit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from hub.batch_writer import BatchWriter
from hub.storage.base import Storage, StoredReading
from hub.storage.postgres import PostgresOptions, PostgresStorage
from hub.storage.sqlite import SqliteOptions, SqliteStorage
from tests.hub.storage.helpers import BASE_TS, fresh_schema, opened, simple
from tests.support.polling import until
from tests.tcp_proxy import TcpProxy

WIDE = (BASE_TS - timedelta(days=1), BASE_TS + timedelta(days=2))


class RecordingSink:
    """An AckSink that remembers every call, optionally checking something at call time."""

    def __init__(self, on_call: Callable[[list[int]], None] | None = None) -> None:
        self.calls: list[list[int]] = []
        self._on_call = on_call

    def committed(self, seqs: list[int]) -> None:
        if self._on_call is not None:
            self._on_call(seqs)
        self.calls.append(list(seqs))

    @property
    def seqs(self) -> list[int]:
        return [seq for call in self.calls for seq in call]


def rows(device_id: str, seqs: range) -> list[StoredReading]:
    return [simple(device_id, BASE_TS + timedelta(seconds=seq), seq=seq) for seq in seqs]


@pytest.fixture
async def sqlite_storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    storage = SqliteStorage(tmp_path / "hub.db", SqliteOptions(busy_timeout_s=0.05))
    async with opened(storage):
        yield storage


@pytest.fixture(params=["sqlite", "postgres"])
def any_backend_url(request: pytest.FixtureRequest) -> str:
    """Empty for SQLite, else the run's PostgreSQL database (resolved outside the loop)."""
    if request.param == "sqlite":
        return ""
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def any_storage(any_backend_url: str, tmp_path: Path) -> AsyncIterator[Storage]:
    """The behaviour tests that need no backend-specific fault run on both backends."""
    if not any_backend_url:
        async with opened(SqliteStorage(tmp_path / "hub.db")) as storage:
            yield storage
        return
    async with fresh_schema(any_backend_url) as url, opened(PostgresStorage(url)) as storage:
        yield storage


async def test_a_full_batch_flushes_without_waiting_for_the_delay(
    any_storage: Storage,
) -> None:
    sink = RecordingSink()
    async with BatchWriter(any_storage, max_batch=50, max_delay_s=60.0) as writer:
        for row in rows("dev-1", range(120)):
            assert writer.offer(row, sink)
        await until(lambda: len(sink.seqs) == 100)
        stats = writer.stats()
        assert (stats.batches_committed_total, stats.last_batch_size) == (2, 50)
        assert writer.health().queue_depth == 20  # the rest waits for its delay
        assert len(await any_storage.readings("dev-1", *WIDE, limit=1000)) == 100
    # Leaving flushed the rest.
    assert sorted(sink.seqs) == list(range(120))
    assert len(await any_storage.readings("dev-1", *WIDE, limit=1000)) == 120


async def test_a_partial_batch_flushes_after_the_delay(any_storage: Storage) -> None:
    sink = RecordingSink()
    async with BatchWriter(any_storage, max_batch=1000, max_delay_s=0.3) as writer:
        offered = time.monotonic()
        for row in rows("dev-1", range(3)):
            writer.offer(row, sink)
        await until(lambda: len(sink.seqs) == 3)
        assert time.monotonic() - offered >= 0.3
        assert sink.calls == [[0, 1, 2]]  # one batch, one call
        assert writer.stats().batches_committed_total == 1


async def test_acks_come_after_the_commit_is_visible_to_others(
    sqlite_storage: SqliteStorage,
) -> None:
    outsider = sqlite3.connect(sqlite_storage.path)
    seen: list[int] = []

    def check_committed(seqs: list[int]) -> None:
        # Another connection sees the rows at the moment the sink hears of them.
        stored = {
            r[0] for r in outsider.execute("SELECT seq FROM readings WHERE device_id = 'dev-1'")
        }
        assert set(seqs) <= stored
        seen.extend(seqs)

    sink = RecordingSink(check_committed)
    try:
        async with BatchWriter(sqlite_storage, max_batch=40, max_delay_s=0.05) as writer:
            for row in rows("dev-1", range(200)):
                writer.offer(row, sink)
                if row.reading.seq and row.reading.seq % 30 == 0:
                    await asyncio.sleep(0.02)
            await until(lambda: len(sink.seqs) == 200)
    finally:
        outsider.close()
    assert sorted(seen) == list(range(200))


async def test_each_sink_hears_its_own_seqs_once_per_batch(any_storage: Storage) -> None:
    a, b = RecordingSink(), RecordingSink()
    async with BatchWriter(any_storage, max_batch=1000, max_delay_s=0.05) as writer:
        for row_a, row_b in zip(
            rows("dev-a", range(10)), rows("dev-b", range(100, 110)), strict=True
        ):
            writer.offer(row_a, a)
            writer.offer(row_b, b)
        writer.offer(simple("dev-a", BASE_TS + timedelta(hours=1)), None)  # no seq: stored only
        writer.offer(simple("dev-c", BASE_TS, seq=5), None)  # no sink: stored only
        await until(lambda: writer.stats().rows_committed_total == 22)
    assert a.calls == [list(range(10))]
    assert b.calls == [list(range(100, 110))]
    assert writer.stats().acked_seqs_total == 20
    assert len(await any_storage.readings("dev-a", *WIDE, limit=100)) == 11
    assert len(await any_storage.readings("dev-c", *WIDE, limit=100)) == 1


async def test_a_full_queue_refuses_and_counts(any_storage: Storage) -> None:
    sink = RecordingSink()
    async with BatchWriter(any_storage, max_batch=100, max_delay_s=0.05, max_queue=5) as writer:
        # No await between offers: the flush task cannot drain the queue meanwhile.
        accepted = [writer.offer(row, sink) for row in rows("dev-1", range(8))]
        assert accepted == [True] * 5 + [False] * 3
        assert writer.stats().rejected_queue_full_total == 3
        health = writer.health()
        assert not health.ready
        assert health.reason == "writer queue full (5 readings)"
        await until(lambda: len(sink.seqs) == 5)
        assert writer.offer(rows("dev-1", range(5, 6))[0], sink)  # room again
        await until(lambda: len(sink.seqs) == 6)
        assert writer.health().ready
    assert sorted(sink.seqs) == list(range(6))  # the refused ones were never acked


async def test_leaving_flushes_everything_queued(any_storage: Storage) -> None:
    sink = RecordingSink()
    async with BatchWriter(any_storage, max_batch=7, max_delay_s=60.0) as writer:
        for row in rows("dev-1", range(30)):
            writer.offer(row, sink)
    assert sorted(sink.seqs) == list(range(30))
    assert len(await any_storage.readings("dev-1", *WIDE, limit=100)) == 30
    assert not writer.offer(rows("dev-1", range(30, 31))[0], sink)  # stopped
    assert writer.stats().rejected_stopped_total == 1
    assert not writer.health().ready


async def test_an_outage_holds_the_batch_and_acks_after_recovery(
    sqlite_storage: SqliteStorage,
) -> None:
    sink = RecordingSink()
    locker = sqlite3.connect(sqlite_storage.path, isolation_level=None)
    try:
        async with BatchWriter(
            sqlite_storage,
            max_batch=10,
            max_delay_s=0.02,
            retry_base_s=0.02,
            retry_cap_s=0.1,
            max_concurrent_batches=2,
        ) as writer:
            locker.execute("BEGIN IMMEDIATE")  # storage refuses every write: "database is locked"
            for row in rows("dev-1", range(25)):
                writer.offer(row, sink)
            await until(
                lambda: writer.stats().storage_errors_total >= 3 and writer.health().in_flight == 20
            )
            health = writer.health()
            assert not health.ready
            assert not health.storage_up
            assert health.reason.startswith("storage unavailable:")
            assert health.queue_depth == 25
            assert health.in_flight == 20  # two batches held, each retrying
            assert sink.calls == []  # nothing acked while nothing is committed
            for row in rows("dev-1", range(25, 30)):  # still accepting while held
                assert writer.offer(row, sink)
            locker.execute("ROLLBACK")
            await until(lambda: len(sink.seqs) == 30)
            assert writer.health().storage_up
    finally:
        locker.close()
    assert sorted(sink.seqs) == list(range(30))
    assert [r["seq"] for r in await sqlite_storage.readings("dev-1", *WIDE, limit=100)] == list(
        range(30)
    )


async def test_a_refused_batch_is_left_unacked_and_the_writer_goes_on(
    sqlite_storage: SqliteStorage,
) -> None:
    with sqlite3.connect(sqlite_storage.path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON readings WHEN NEW.device_id = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        )
    good, bad = RecordingSink(), RecordingSink()
    async with BatchWriter(sqlite_storage, max_batch=100, max_delay_s=0.02) as writer:
        for row in rows("poison", range(5)):
            writer.offer(row, bad)
        await until(lambda: writer.stats().batches_failed_total == 1)
        for row in rows("dev-1", range(5)):
            writer.offer(row, good)
        await until(lambda: len(good.seqs) == 5)
    assert bad.calls == []
    stats = writer.stats()
    assert (stats.rows_failed_total, stats.rows_committed_total) == (5, 5)
    assert "poisoned" in writer.health().last_error


async def test_a_failing_sink_does_not_cost_the_others_their_acks(
    sqlite_storage: SqliteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(seqs: list[int]) -> None:
        raise RuntimeError("socket gone")

    broken, fine = RecordingSink(explode), RecordingSink()
    async with BatchWriter(sqlite_storage, max_batch=100, max_delay_s=0.02) as writer:
        writer.offer(rows("dev-a", range(1))[0], broken)
        writer.offer(rows("dev-b", range(1))[0], fine)
        await until(lambda: fine.seqs == [0])
        writer.offer(rows("dev-b", range(1, 2))[0], fine)
        await until(lambda: fine.seqs == [0, 1])
    assert "an ack sink failed" in caplog.text


async def test_leaving_during_an_outage_is_bounded(sqlite_storage: SqliteStorage) -> None:
    sink = RecordingSink()
    locker = sqlite3.connect(sqlite_storage.path, isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        writer = BatchWriter(sqlite_storage, max_delay_s=0.01, flush_timeout_s=0.5)
        async with writer:
            for row in rows("dev-1", range(5)):
                writer.offer(row, sink)
            await until(lambda: writer.stats().storage_errors_total >= 1)
            started = time.monotonic()
        assert time.monotonic() - started < 5.0
        locker.execute("ROLLBACK")
    finally:
        locker.close()
    assert sink.calls == []


@pytest.fixture
async def proxied_postgres(postgres_url: str) -> AsyncIterator[tuple[TcpProxy, str, str]]:
    """(proxy, URL through the proxy, direct URL) on a fresh schema."""
    async with fresh_schema(postgres_url) as url:
        parts = urlsplit(url)
        async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
            yield proxy, proxy.rewrite_url(url), url


async def _stored_seqs(direct_url: str, device_id: str) -> list[int]:
    conn = await asyncpg.connect(direct_url)
    try:
        records = await conn.fetch(
            "SELECT seq FROM readings WHERE device_id = $1 ORDER BY ts", device_id
        )
    finally:
        await conn.close()
    return [r["seq"] for r in records]


async def test_database_cut_off_then_restored(
    proxied_postgres: tuple[TcpProxy, str, str],
) -> None:
    """docs/protocol.md: never ack before the commit; after the outage every held reading is
    committed once and acked once, and re-sent readings are stored once."""
    proxy, url, direct = proxied_postgres
    storage: Storage = PostgresStorage(url, PostgresOptions(connect_timeout_s=2.0))
    sink = RecordingSink()
    async with (
        opened(storage),
        BatchWriter(
            storage, max_batch=50, max_delay_s=0.02, retry_base_s=0.05, retry_cap_s=0.5
        ) as writer,
    ):
        for row in rows("dev-1", range(100)):
            writer.offer(row, sink)
        await until(lambda: len(sink.seqs) == 100)

        await proxy.cut()
        for row in rows("dev-1", range(100, 230)):
            assert writer.offer(row, sink)
        await until(lambda: writer.stats().storage_errors_total >= 2)
        assert len(sink.seqs) == 100  # no ack without a commit...
        assert await _stored_seqs(direct, "dev-1") == list(range(100))  # ...and no commit
        health = writer.health()
        assert not health.ready
        assert health.reason.startswith("storage unavailable:")
        # The edge re-sends what stays unacked: some of it again, while still cut.
        for row in rows("dev-1", range(150, 170)):
            writer.offer(row, sink)

        await proxy.restore()
        await until(lambda: set(sink.seqs) == set(range(230)))
        await until(lambda: writer.health().queue_depth == 0)
        assert writer.health().ready
    assert await _stored_seqs(direct, "dev-1") == list(range(230))  # each exactly once
    acked = sink.seqs
    assert sorted(acked) == sorted(list(range(230)) + list(range(150, 170)))
