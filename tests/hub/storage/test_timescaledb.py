"""TimescaleDB itself: the hypertable, its compression, the minute rollup and its refreshes.

Each test has its own database on the run's TimescaleDB server (tests/conftest.py).
Background jobs may not run by themselves on a test server: a policy runs here when
the test says so, with ``CALL run_job(id)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from hub.storage import postgres as pg
from hub.storage.base import StorageUnavailable
from hub.storage.columns import BUCKET_ORIGIN
from hub.storage.postgres import PostgresStorage
from hub.storage.schema import ROLLUP
from tests.hub.storage.helpers import BASE_TS, opened, postgres_options, run_policy, simple

pytestmark = pytest.mark.timescaledb

MINUTE = timedelta(minutes=1)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


def timescale(url: str, **options: Any) -> PostgresStorage:
    return PostgresStorage(url, postgres_options("timescaledb", **options))


async def jobs(conn: asyncpg.Connection) -> dict[str, tuple[int, dict[str, Any]]]:
    """``{policy name and its table: (job id, config)}`` of this database's policies."""
    rows = await conn.fetch(
        "SELECT job_id, proc_name, hypertable_name, config FROM timescaledb_information.jobs "
        "WHERE hypertable_name IS NOT NULL"
    )
    return {
        f"{r['proc_name']}:{r['hypertable_name']}": (r["job_id"], json.loads(r["config"]))
        for r in rows
    }


COMPRESSION = ("policy_compression", "readings")
ROLLUP_REFRESH = ("policy_refresh_continuous_aggregate", ROLLUP)


async def pause_jobs(conn: asyncpg.Connection) -> None:
    """Only the test runs this database's policies (the scheduler would at any time)."""
    await conn.execute(
        "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
        "WHERE hypertable_name IS NOT NULL"
    )


async def test_readings_are_a_compressed_hypertable_with_a_minute_rollup(
    timescaledb_url: str,
) -> None:
    async with opened(timescale(timescaledb_url)) as storage:
        assert isinstance(storage, PostgresStorage)
        assert storage.timescale.present
        assert storage.description.startswith("PostgreSQL with TimescaleDB 2.")
    async with connected(timescaledb_url) as conn:
        table = await conn.fetchrow(
            "SELECT compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'readings'"
        )
        assert table is not None
        assert table["compression_enabled"]
        chunk = await conn.fetchval(
            "SELECT time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_name = 'readings' AND column_name = 'ts'"
        )
        assert chunk == timedelta(days=1)
        segment = await conn.fetch(
            "SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc "
            "FROM timescaledb_information.compression_settings "
            "WHERE hypertable_name = 'readings'"
        )
        assert {(r["attname"], r["segmentby_column_index"]) for r in segment} >= {("device_id", 1)}
        assert [(r["attname"], r["orderby_asc"]) for r in segment if r["orderby_column_index"]] == [
            ("ts", False)
        ]
        view = await conn.fetchrow(
            "SELECT materialized_only FROM timescaledb_information.continuous_aggregates "
            "WHERE view_name = $1",
            ROLLUP,
        )
        assert view is not None
        assert view["materialized_only"] is False  # real time
        policies = await jobs(conn)
        assert policies[":".join(COMPRESSION)][1]["compress_after"] == "7 days"
        refresh = policies[":".join(ROLLUP_REFRESH)][1]
        assert (refresh["start_offset"], refresh["end_offset"]) == ("7 days", "00:01:00")


async def test_a_restart_replaces_each_policy_with_the_configured_one(
    timescaledb_url: str,
) -> None:
    async with opened(timescale(timescaledb_url)):
        pass
    async with opened(
        timescale(
            timescaledb_url,
            compress_after=timedelta(days=3),
            rollup_refresh_start=timedelta(days=2),
            retention=timedelta(days=400),
        )
    ):
        pass
    async with connected(timescaledb_url) as conn:
        policies = await jobs(conn)
    names = sorted(policies)
    assert names.count(":".join(COMPRESSION)) == names.count(":".join(ROLLUP_REFRESH)) == 1
    assert policies[":".join(COMPRESSION)][1]["compress_after"] == "3 days"
    assert policies[":".join(ROLLUP_REFRESH)][1]["start_offset"] == "2 days"
    assert policies["policy_retention:readings"][1]["drop_after"] == "400 days"


async def test_compressed_chunks_keep_every_reading_once(timescaledb_url: str) -> None:
    # BASE_TS is weeks before today: past the week after which chunks are compressed.
    first = [simple("dev-1", BASE_TS + timedelta(seconds=s), seq=s) for s in range(0, 600, 5)]
    async with opened(timescale(timescaledb_url)) as storage:
        await storage.write_readings(first)
        async with connected(timescaledb_url) as conn:
            await run_policy(conn, *COMPRESSION)
            compressed = await conn.fetchval(
                "SELECT count(*) FROM timescaledb_information.chunks "
                "WHERE hypertable_name = 'readings' AND is_compressed"
            )
        assert compressed >= 1
        window = (BASE_TS - timedelta(hours=1), BASE_TS + timedelta(hours=1))
        assert await storage.readings("dev-1", *window, limit=1000) == [
            s.reading.to_wire() for s in first
        ]
        # Re-sent into the compressed chunk, with new readings among them: stored once.
        again = first[-3:] + [
            simple("dev-1", BASE_TS + timedelta(seconds=s), seq=s) for s in range(600, 630, 5)
        ]
        await storage.write_readings(again)
        await storage.write_readings(again)
        rows = await storage.readings("dev-1", *window, limit=1000)
        assert [r["seq"] for r in rows] == list(range(0, 630, 5))
        buckets = await storage.buckets("dev-1", BASE_TS, BASE_TS + timedelta(minutes=11), MINUTE)
        assert [b["grid"]["power_w"] for b in buckets] == [100.0] * 11


def _instant(wire: str) -> datetime:
    return datetime.fromisoformat(wire.replace("Z", "+00:00"))


def _backlog(device_id: str, start: datetime, minutes: int) -> list[Any]:
    """Two readings a minute for ``minutes`` minutes; each minute's mean is its index."""
    return [
        simple(device_id, start + timedelta(minutes=m, seconds=s), power_w=m + (s - 15) / 15)
        for m in range(minutes)
        for s in (0, 30)
    ]


async def test_a_backlog_days_late_shows_every_minute_in_bucketed_history(
    timescaledb_url: str,
) -> None:
    quarter = timedelta(minutes=15)
    now = BUCKET_ORIGIN + (datetime.now(UTC) - BUCKET_ORIGIN) // quarter * quarter
    async with opened(timescale(timescaledb_url)) as storage:
        # A live device, and the refresh policy run: the rollup is materialised up
        # to a minute ago, so rows older than that are read from it, not raw.
        await storage.write_readings([simple("live", now - timedelta(minutes=m)) for m in range(5)])
        async with connected(timescaledb_url) as conn:
            await run_policy(conn, *ROLLUP_REFRESH)
            for days in (10, 3):
                start = now - timedelta(days=days, hours=6)
                await storage.write_readings(_backlog("site", start, 360))
                if days == 3:
                    # Inside the policy's window: its next run computes these minutes.
                    await run_policy(conn, *ROLLUP_REFRESH)
                end = start + timedelta(hours=6)
                buckets = await storage.buckets("site", start, end, MINUTE)
                assert [_instant(b["ts"]) for b in buckets] == [
                    start + m * MINUTE for m in range(360)
                ]
                assert [b["grid"]["power_w"] for b in buckets] == [float(m) for m in range(360)]
                # Wider buckets re-aggregate the minutes by their counts.
                quarters = await storage.buckets("site", start, end, quarter)
                assert [b["grid"]["power_w"] for b in quarters] == [
                    statistics.fmean(range(q * 15, q * 15 + 15)) for q in range(24)
                ]
            # Computed and stored in the rollup, not merely read through from raw rows.
            await conn.execute(
                f"ALTER MATERIALIZED VIEW {ROLLUP} SET (timescaledb.materialized_only = true)"
            )
            for days in (10, 3):
                start = now - timedelta(days=days, hours=6)
                stored_minutes = await conn.fetchval(
                    f"SELECT count(*) FROM {ROLLUP} WHERE device_id = 'site' "
                    "AND bucket >= $1 AND bucket < $2",
                    start,
                    start + timedelta(hours=6),
                )
                assert stored_minutes == 360, days


async def test_recent_readings_need_no_refresh_and_read_through(timescaledb_url: str) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    async with opened(timescale(timescaledb_url)) as storage, connected(timescaledb_url) as conn:
        await pause_jobs(conn)
        await storage.write_readings([simple("live", now - timedelta(hours=1))])
        await run_policy(conn, *ROLLUP_REFRESH)
        before = await conn.fetchval(f"SELECT count(*) FROM {ROLLUP}")
        assert before == 1
        # Newer than the policy's last run: real-time aggregation reads them raw, and
        # the writer refreshes nothing (the rollup holds what it held).
        await storage.write_readings(_backlog("live", now - timedelta(minutes=30), 20))
        buckets = await storage.buckets("live", now - timedelta(minutes=30), now, MINUTE)
        assert [b["grid"]["power_w"] for b in buckets] == [float(m) for m in range(20)]
        await conn.execute(
            f"ALTER MATERIALIZED VIEW {ROLLUP} SET (timescaledb.materialized_only = true)"
        )
        assert await conn.fetchval(f"SELECT count(*) FROM {ROLLUP}") == before


@contextlib.asynccontextmanager
async def refresh_elsewhere(url: str, start: datetime) -> AsyncIterator[Callable[[], Any]]:
    """Another session's refresh of the rollup around ``start``, held half-way until the
    yielded function is awaited: its window stays taken meanwhile."""
    async with connected(url) as holder, connected(url) as other:
        await pause_jobs(holder)
        schema, table = await holder.fetchrow(
            "SELECT materialization_hypertable_schema, materialization_hypertable_name "
            "FROM timescaledb_information.continuous_aggregates WHERE view_name = $1",
            ROLLUP,
        )
        held = holder.transaction()
        await held.start()
        # Reads pass, the other refresh's materialisation waits.
        await holder.execute(f'LOCK TABLE "{schema}"."{table}" IN EXCLUSIVE MODE')
        elsewhere = asyncio.create_task(
            other.execute(
                f"CALL refresh_continuous_aggregate('{ROLLUP}', $1::timestamptz, $2::timestamptz)",
                start - timedelta(hours=1),
                start + timedelta(hours=1),
            )
        )
        waiting = False
        for _ in range(500):
            waiting = await holder.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                other.get_server_pid(),
            )
            if waiting:
                break
            await asyncio.sleep(0.02)
        assert waiting, "the other refresh never reached the held lock"

        async def release() -> None:
            await held.rollback()
            await elsewhere

        try:
            yield release
        finally:
            if not elsewhere.done():
                await release()


async def test_a_late_batch_waits_for_a_refresh_running_elsewhere(timescaledb_url: str) -> None:
    # TimescaleDB refuses a refresh while another session refreshes an overlapping
    # window (the policy's run, say): the writer tries again until that one is done.
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=20)
    async with (
        opened(timescale(timescaledb_url)) as storage,
        refresh_elsewhere(timescaledb_url, start) as release,
    ):
        write = asyncio.create_task(storage.write_readings(_backlog("site", start, 30)))
        await asyncio.sleep(1.0)
        assert not write.done()  # committed, and waiting to refresh its minutes
        await release()
        await asyncio.wait_for(write, 30.0)
        buckets = await storage.buckets("site", start, start + 30 * MINUTE, MINUTE)
        assert [b["grid"]["power_w"] for b in buckets] == [float(m) for m in range(30)]


async def test_a_refresh_kept_waiting_too_long_makes_the_batch_unavailable(
    timescaledb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer then retries the batch whole: stored once, refreshed that time.
    monkeypatch.setattr(pg, "REFRESH_CONFLICT_WAIT_S", 0.3)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=20)
    batch = _backlog("site", start, 30)
    async with opened(timescale(timescaledb_url)) as storage:
        async with refresh_elsewhere(timescaledb_url, start):
            with pytest.raises(StorageUnavailable, match=f"refreshing {ROLLUP}"):
                await storage.write_readings(batch)
        rows = await storage.readings("site", start, start + 30 * MINUTE, limit=100)
        assert len(rows) == 60  # committed before the refresh was tried
        await storage.write_readings(batch)
        assert len(await storage.readings("site", start, start + 30 * MINUTE, limit=100)) == 60
        buckets = await storage.buckets("site", start, start + 30 * MINUTE, MINUTE)
        assert [b["grid"]["power_w"] for b in buckets] == [float(m) for m in range(30)]


async def test_a_reading_past_retention_leaves_the_kept_rollup_as_it_was(
    timescaledb_url: str,
) -> None:
    # The rollup outlives the raw rows retention drops; a reading that arrives for
    # such a minute must not make a refresh compute that minute again from nothing.
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=40)
    async with opened(timescale(timescaledb_url)) as storage:
        await storage.write_readings(
            [
                simple("site", minute + timedelta(seconds=s), power_w=p)
                for s, p in ((0, 100.0), (30, 300.0))
            ]
        )
    async with (
        opened(timescale(timescaledb_url, retention=timedelta(days=30))) as storage,
        connected(timescaledb_url) as conn,
    ):
        await pause_jobs(conn)
        await run_policy(conn, "policy_retention", "readings")
        assert await storage.readings("site", minute, minute + MINUTE, limit=10) == []
        late = simple("site", minute + timedelta(seconds=10), power_w=5000.0)
        await storage.write_readings([late])
        assert await storage.readings("site", minute, minute + MINUTE, limit=10) == [
            late.reading.to_wire()
        ]
        (kept,) = await storage.buckets("site", minute, minute + MINUTE, MINUTE)
        assert kept["grid"]["power_w"] == 200.0
