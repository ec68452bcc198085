"""Retention on every backend: old readings go in batches, rollups outlive them
(hub/storage/retention.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from hub.storage.base import Storage, StorageConfigError
from hub.storage.energy import ENERGY_CAGG, EnergySums
from hub.storage.postgres import PostgresStorage
from hub.storage.retention import (
    DEFAULT_READINGS,
    DEFAULT_ROLLUPS,
    KEEP_ALL,
    Retention,
    parse_duration,
)
from hub.storage.schema import ROLLUP
from tests.hub.storage.helpers import (
    TIMESCALE_BACKEND,
    make_storage,
    opened,
    postgres_options,
    run_policy,
)
from tests.hub.storage.test_energy import settle, steady, wh, write

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def same(sums: EnergySums | None) -> tuple[object, ...]:
    """``sums`` to the µWh: a sum added up in another order may differ in its last bit."""
    assert sums is not None
    quantities = tuple(None if q is None else round(q, 6) for q in sums.quantities)
    return (sums.readings, sums.incomplete, round(sums.span_s, 6), sums.max_span_s, quantities)


def test_durations_and_off() -> None:
    assert parse_duration("90d", "--retain-readings") == timedelta(days=90)
    assert parse_duration(" 10Y ", "--retain-rollups") == timedelta(days=3650)
    assert parse_duration("12w", "k") == timedelta(weeks=12)
    assert parse_duration("36h", "k") == timedelta(hours=36)
    assert parse_duration("off", "k") is None
    for bad in ("", "90", "0d", "-3d", "1.5d", "3 months"):
        with pytest.raises(StorageConfigError, match="--retain-readings"):
            parse_duration(bad, "--retain-readings")


def test_the_defaults_are_bounded_and_rollups_outlive_readings() -> None:
    default = Retention()
    assert (default.readings, default.rollups) == (DEFAULT_READINGS, DEFAULT_ROLLUPS)
    assert default.readings_before(NOW) == NOW - timedelta(days=400)
    assert KEEP_ALL.readings_before(NOW) is None
    assert KEEP_ALL.rollups_before(NOW) is None
    with pytest.raises(StorageConfigError, match="--retain-rollups"):
        Retention(readings=timedelta(days=90), rollups=timedelta(days=30))
    with pytest.raises(StorageConfigError, match="--retain-rollups"):
        Retention(readings=None, rollups=timedelta(days=3650))
    with pytest.raises(StorageConfigError, match="--retain-readings"):
        Retention(readings=timedelta(days=2), rollups=None)
    assert Retention(readings=timedelta(days=30), rollups=None).rollups_before(NOW) is None


async def test_prune_deletes_old_readings_in_batches_and_keeps_their_energy(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=50)
    if backend == TIMESCALE_BACKEND:
        # Its policies drop whole chunks (the test below); prune leaves every row.
        await write(storage, steady(hour, 10, 10.0, pv_wh=100.0))
        assert await storage.prune(hour + timedelta(days=1), hour + timedelta(days=1), 5) == 0
        assert len(await storage.readings("site", hour, hour + timedelta(days=1), 100)) == 10
        return
    await write(storage, steady(hour, 360, 10.0, pv_wh=100.0))  # 360 readings, 100 Wh
    await write(storage, steady(hour, 30, 10.0, pv_wh=100.0), batch=30)
    for device in ("b", "c"):
        await storage.write_readings(
            [r.__class__(device, r.reading, r.received_at) for r in steady(hour, 10, 60.0)]
        )
    recent = hour + timedelta(days=45)
    await write(storage, steady(recent, 6, 10.0, first_seq=1000, pv_wh=100.0))
    cutoff = hour + timedelta(days=30)
    # Batches of 150: 380 old readings of three devices take three calls.
    deleted = [await storage.prune(cutoff, None, 150) for _ in range(4)]
    assert deleted == [150, 150, 80, 0]
    end = recent + timedelta(days=1)
    assert await storage.readings("site", hour, end, limit=1000) == [
        r.reading.to_wire() for r in steady(recent, 6, 10.0, first_seq=1000, pv_wh=100.0)
    ]
    for device in ("b", "c"):
        assert await storage.readings(device, hour, end, limit=10) == []
    # The energy of the dropped readings is kept in the rollup.
    (old,) = await storage.energy("site", (hour, hour + timedelta(hours=1)))
    assert wh(old) == 100.0
    total = await storage.energy_total("site")
    assert total is not None
    assert (total.readings, wh(total)) == (366, 101.7)
    # Rollups go by their own horizon; all-time totals keep what they pruned
    # (hub/storage/pruned_energy.py), however often prune runs.
    for _ in range(2):
        assert await storage.prune(None, hour + timedelta(hours=1), 150) == 0
        assert await storage.energy("site", (hour, hour + timedelta(hours=1))) == [None]
        assert same(await storage.energy_total("site")) == same(total)
    (kept,) = await storage.energy("site", (recent, recent + timedelta(hours=1)))
    assert wh(kept) == 1.7
    # The readings to come add to the kept total, and then prune away into it too.
    await write(storage, steady(recent + timedelta(hours=1), 6, 10.0, first_seq=2000, pv_wh=50.0))
    grown = await storage.energy_total("site")
    assert grown is not None
    assert (grown.readings, wh(grown)) == (372, 102.5)
    assert await storage.prune(None, recent + timedelta(days=1), 150) == 0
    assert await storage.energy("site", (recent, recent + timedelta(hours=2))) == [None]
    assert same(await storage.energy_total("site")) == same(grown)
    for device in ("b", "c"):  # spans without quantities: counted, their sums unknown
        assert await storage.energy_total(device) == EnergySums(10, 0, 600.0, 60.0, (None,) * 6)
    assert await storage.energy_total("nobody") is None


async def test_two_hubs_pruning_at_once_keep_each_bucket_once(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    # The hubs of a cluster share a database, and each runs retention
    # (hub/storage/pruned_energy.py): the pruned buckets are kept once, not twice.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ancient, recent = now - timedelta(days=90), now - timedelta(days=5)
    await write(storage, steady(ancient, 360, 10.0, pv_wh=100.0))
    await write(storage, steady(recent, 360, 10.0, first_seq=1000, pv_wh=300.0))
    await settle(backend, storage_factory)
    total = await storage.energy_total("site")
    assert total is not None
    assert (total.readings, wh(total)) == (720, 400.0)
    url, data_dir = storage_factory
    async with opened(make_storage(backend, url=url, data_dir=data_dir)) as other:
        horizon = now - timedelta(days=60)
        await asyncio.gather(*(s.prune(None, horizon, 1000) for s in (storage, other, storage)))
        assert same(await other.energy_total("site")) == same(total)
    assert same(await storage.energy_total("site")) == same(total)
    assert await storage.energy("site", (ancient, ancient + timedelta(hours=1))) == [None]
    (kept,) = await storage.energy("site", (recent, recent + timedelta(hours=1)))
    assert wh(kept) == 300.0


async def test_timescaledb_retention_policies_drop_readings_and_rollups(
    timescaledb_url: str,
) -> None:
    retention = Retention(readings=timedelta(days=30), rollups=timedelta(days=60))
    options = postgres_options(
        "timescaledb", retention=retention.readings, rollup_retention=retention.rollups
    )
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ancient, old = now - timedelta(days=90), now - timedelta(days=40)
    async with opened(PostgresStorage(timescaledb_url, options)) as storage:
        for start in (ancient, old):
            await write(storage, steady(start, 360, 10.0, pv_wh=100.0))
        conn = await asyncpg.connect(timescaledb_url)
        try:
            for view in (ENERGY_CAGG, ROLLUP):
                await conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            total = await storage.energy_total("site")
            assert total is not None
            assert (total.readings, wh(total)) == (720, 200.0)
            # The readings and the minute rollup go by their policies; the energy
            # aggregate has none (hub/storage/pruned_energy.py).
            await run_policy(conn, "policy_retention", "readings")
            assert await conn.fetchval("SELECT count(*) FROM readings") == 0
            await run_policy(conn, "policy_retention", ROLLUP)
            assert not await conn.fetchval(
                "SELECT count(*) FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_retention' AND hypertable_name = $1",
                ENERGY_CAGG,
            )
            # Its chunks that end before the horizon are dropped by prune, their
            # sums kept in the device's total; twice is the same as once.
            for _ in range(2):
                assert await storage.prune(None, retention.rollups_before(now), 1000) == 0
                assert same(await storage.energy_total("site")) == same(total)
            oldest = await conn.fetchval(
                "SELECT min(c.range_start) FROM timescaledb_information.chunks c "
                "JOIN timescaledb_information.continuous_aggregates a "
                "ON c.hypertable_name = a.materialization_hypertable_name "
                "WHERE a.view_name = $1",
                ENERGY_CAGG,
            )
            assert ancient < oldest <= old  # only the chunk of the ancient hour went
        finally:
            await conn.close()
        (gone,) = await storage.energy("site", (ancient, ancient + timedelta(hours=1)))
        (kept,) = await storage.energy("site", (old, old + timedelta(hours=1)))
        assert gone is None
        assert wh(kept) == 100.0
        minutes = await storage.buckets("site", old, old + timedelta(hours=1), timedelta(hours=1))
        assert len(minutes) == 1
        assert (
            await storage.buckets("site", ancient, ancient + timedelta(hours=1), timedelta(hours=1))
            == []
        )
