"""Energy rollups on every backend: sums equal to the hand-computed Wh, each reading once.

The readings carry the edge's increments (docs/protocol.md, "Energy"); the
intervals are the site's local hours, days and months (hub/energy_query.py).
On TimescaleDB the continuous aggregate is brought up to date as its policy
would (``CALL run_job``): background jobs do not run by themselves here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from hub.energy_query import parse_energy_query
from hub.storage.base import Storage, StoredReading
from hub.storage.energy import ALL_TIME, ENERGY_CAGG, EnergySums
from hub.storage.postgres import PostgresStorage
from hub.storage.schema import TimescaleMode
from telemetry import Reading
from tests.hub.storage.helpers import TIMESCALE_BACKEND, opened, postgres_options, run_policy

BERLIN = "Europe/Berlin"
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def energy_reading(
    ts: datetime, seq: int, *, span: float | None = 1.0, complete: bool = True, **wh: float
) -> StoredReading:
    energy: dict[str, Any] = {"complete": complete, **wh}
    if span is not None:
        energy["span_s"] = span
    body = {"seq": seq, "ts": ts.isoformat(), "grid": {"power_w": 1.0}, "energy": energy}
    reading = Reading.model_validate(body, context={"now": FAR_FUTURE})
    return StoredReading("site", reading, datetime.now(UTC))


def steady(
    start: datetime, count: int, step_s: float, first_seq: int = 0, **watts: float
) -> list[StoredReading]:
    """``count`` readings ``step_s`` apart from ``start``, each with its span's Wh at ``watts``."""
    return [
        energy_reading(
            start + timedelta(seconds=step_s * i),
            first_seq + i,
            span=step_s,
            **{name: power * step_s / 3600 for name, power in watts.items()},
        )
        for i in range(count)
    ]


async def write(storage: Storage, rows: Sequence[StoredReading], batch: int = 1000) -> None:
    for start in range(0, len(rows), batch):
        await storage.write_readings(rows[start : start + batch])


async def settle(backend: str, storage_factory: tuple[str, Path]) -> None:
    """TimescaleDB: run the aggregate's refresh policy once, as the scheduler would."""
    if backend != TIMESCALE_BACKEND:
        return
    conn = await asyncpg.connect(storage_factory[0])
    try:
        await run_policy(conn, "policy_refresh_continuous_aggregate", ENERGY_CAGG)
    finally:
        await conn.close()


def edges(start: str, end: str | None = None, period: str = "hour", tz: str = BERLIN) -> Any:
    return parse_energy_query(
        start=start, end=end, period=period, tz=tz, stored_zone=None, now=FAR_FUTURE
    ).edges


def wh(sums: EnergySums | None, quantity: int = 0) -> float | None:
    if sums is None:
        return None
    value = sums.quantities[quantity]
    return None if value is None else round(value, 1)


async def test_constant_power_over_a_day(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    # 1 kW of PV and 400 W of house for a day of readings 10 s apart (UTC day).
    day = datetime(2026, 6, 10, tzinfo=UTC)
    await write(storage, steady(day, 8640, 10.0, pv_wh=1000.0, house_wh=400.0))
    await settle(backend, storage_factory)
    hours = await storage.energy("site", edges("2026-06-10", tz="UTC"))
    assert [wh(h) for h in hours] == [1000.0] * 24
    assert [wh(h, 5) for h in hours] == [400.0] * 24
    assert all(h is not None and h.covers(timedelta(hours=1)) for h in hours)
    (whole,) = await storage.energy("site", edges("2026-06-10", period="day", tz="UTC"))
    assert (wh(whole), wh(whole, 5)) == (24_000.0, 9_600.0)
    assert whole is not None
    assert whole.readings == 8640
    assert whole.incomplete == 0
    # Quantities no reading gave stay unknown, not zero.
    assert whole.quantities[1:5] == (None, None, None, None)


async def test_increments_across_a_counter_reset_sum_exactly(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    # The edge turns a reset counter into increments (a new baseline, nothing negative,
    # the reading of the reset marked incomplete); stored, they add up to the mWh.
    start = datetime(2026, 6, 11, 10, tzinfo=UTC)
    increments = [Decimal(f"0.{(i * 37) % 1000:03d}") for i in range(3600)]
    rows = []
    for i, inc in enumerate(increments):
        reset = i == 1800
        rows.append(
            energy_reading(
                start + timedelta(seconds=i),
                i,
                complete=not reset,
                import_wh=0.0 if reset else float(inc),
            )
        )
    await write(storage, rows, batch=700)
    await settle(backend, storage_factory)
    (hour,) = await storage.energy(
        "site", edges("2026-06-11T10:00:00Z", "2026-06-11T11:00:00Z", tz="UTC")
    )
    expected = sum(inc for i, inc in enumerate(increments) if i != 1800)
    assert hour is not None
    assert hour.quantities[1] is not None
    assert abs(Decimal(repr(hour.quantities[1])) - expected) < Decimal("0.000001")
    assert (hour.readings, hour.incomplete) == (3600, 1)
    assert not hour.covers(timedelta(hours=1))


async def test_a_gap_makes_its_hours_incomplete(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    start = datetime(2026, 6, 12, 10, tzinfo=UTC)
    await write(storage, steady(start, 180, 10.0, pv_wh=600.0))  # 10:00 - 10:30
    # The agent was down from 10:30 to 11:30: the reading closing the gap says so.
    closing = energy_reading(start + timedelta(minutes=90), 500, span=3600.0, complete=False)
    after = steady(start + timedelta(minutes=90, seconds=10), 360 + 180, 10.0, 501, pv_wh=600.0)
    await write(storage, [closing, *after])
    await settle(backend, storage_factory)
    ten, eleven, twelve = await storage.energy(
        "site", edges("2026-06-12T10:00:00Z", "2026-06-12T13:00:00Z", tz="UTC")
    )
    assert ten is not None
    assert not ten.covers(timedelta(hours=1))
    assert wh(ten) == 300.0
    assert eleven is not None
    assert eleven.incomplete == 1
    assert not eleven.covers(timedelta(hours=1))
    assert twelve is not None
    assert twelve.covers(timedelta(hours=1))
    assert wh(twelve) == 600.0


async def test_dst_days_in_berlin_have_23_and_25_hours(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    # 1 Wh every 15 minutes through both change days, in Berlin's wall time.
    spring = datetime(2026, 3, 28, 23, tzinfo=UTC)  # 2026-03-29 00:00 +01:00
    autumn = datetime(2026, 10, 24, 22, tzinfo=UTC)  # 2026-10-25 00:00 +02:00
    await write(storage, steady(spring, 23 * 4, 900.0, pv_wh=4.0))
    await write(storage, steady(autumn, 25 * 4, 900.0, first_seq=1000, pv_wh=4.0))
    await settle(backend, storage_factory)
    for day, hours in (("2026-03-29", 23), ("2026-10-25", 25)):
        hourly = await storage.energy("site", edges(day))
        assert len(hourly) == hours
        assert [wh(h) for h in hourly] == [4.0] * hours
        (whole,) = await storage.energy("site", edges(day, period="day"))
        assert wh(whole) == 4.0 * hours
        assert whole is not None
        assert whole.covers(timedelta(hours=hours))
        # The days around it hold nothing.
        before, _, after = await storage.energy(
            "site",
            edges(
                (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat(),
                (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat(),
                period="day",
            ),
        )
        assert before is None
        assert after is None


async def test_a_month_boundary_is_local_midnight(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    # 22:00 UTC on 31 January to 01:00 UTC on 1 February: Berlin's February starts at 23:00 UTC.
    start = datetime(2026, 1, 31, 22, tzinfo=UTC)
    await write(storage, steady(start, 3 * 60, 60.0, import_wh=600.0))
    await settle(backend, storage_factory)
    january, february = await storage.energy("site", edges("2026-01", "2026-02", period="month"))
    assert (wh(january, 1), wh(february, 1)) == (600.0, 1200.0)
    utc_january, utc_february = await storage.energy(
        "site", edges("2026-01", "2026-02", period="month", tz="UTC")
    )
    assert (wh(utc_january, 1), wh(utc_february, 1)) == (1200.0, 600.0)
    (year,) = await storage.energy("site", edges("2026", period="year"))
    assert wh(year, 1) == 1800.0


async def test_a_backlog_lands_exactly_once(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    # The live hour first, and the aggregate brought up to date past it.
    await write(storage, steady(now, 360, 10.0, first_seq=100_000, export_wh=360.0))
    await settle(backend, storage_factory)
    backlogs = {
        3: steady(now - timedelta(days=3), 360, 10.0, first_seq=10_000, export_wh=720.0),
        10: steady(now - timedelta(days=10), 360, 10.0, first_seq=20_000, export_wh=1080.0),
    }
    expected = {0: 360.0, 3: 720.0, 10: 1080.0}

    async def hour_of(days_ago: int) -> float | None:
        start = now - timedelta(days=days_ago)
        (hour,) = await storage.energy("site", (start, start + timedelta(hours=1)))
        return wh(hour, 2)

    for days, rows in backlogs.items():
        await write(storage, rows, batch=250)
        await settle(backend, storage_factory)
        assert await hour_of(days) == expected[days]
    # Sent again (its acks were lost), and again overlapping new readings: still once.
    for rows in backlogs.values():
        await write(storage, rows, batch=1000)
        await write(storage, rows[100:300])
    await settle(backend, storage_factory)
    assert {days: await hour_of(days) for days in expected} == expected


async def test_a_batch_of_stored_and_new_readings_adds_only_the_new(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    start = datetime(2026, 6, 13, 8, tzinfo=UTC)
    rows = steady(start, 360, 10.0, charge_wh=36.0, discharge_wh=72.0)
    await write(storage, rows[:200])
    await write(storage, rows[150:])  # 50 stored, 160 new, in one batch
    await write(storage, [rows[10], rows[10], rows[359]])  # duplicates inside a batch
    await settle(backend, storage_factory)
    (hour,) = await storage.energy("site", (start, start + timedelta(hours=1)))
    assert hour is not None
    assert (wh(hour, 3), wh(hour, 4), hour.readings) == (36.0, 72.0, 360)


async def test_all_time_sums_hold_every_stored_reading_at_once(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    # What the MQTT bridge reads (hub/mqtt_bridge.py): a device's sums over every
    # quarter hour. Months apart, and the live quarter hour read before any refresh
    # (TimescaleDB's aggregate reads what is not materialised raw).
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    await write(storage, steady(datetime(2025, 1, 1, tzinfo=UTC), 360, 10.0, pv_wh=360.0))
    await settle(backend, storage_factory)
    await write(storage, steady(now - timedelta(days=40), 360, 10.0, 1000, pv_wh=720.0))
    live = steady(now, 6, 10.0, 2000, pv_wh=3600.0, import_wh=360.0)
    await write(storage, live)
    total = await storage.energy_total("site")
    assert total is not None
    assert (wh(total), wh(total, 1), total.readings) == (360.0 + 720.0 + 60.0, 6.0, 726)
    assert total.quantities[2:] == (None, None, None, None)
    assert [total] == await storage.energy("site", ALL_TIME)
    # Sent again: nothing more. One more reading: it is there at once.
    await write(storage, live)
    await write(storage, [energy_reading(now + timedelta(seconds=60), 2006, import_wh=0.5)])
    total = await storage.energy_total("site")
    assert total is not None
    assert (wh(total), wh(total, 1), total.readings) == (1140.0, 6.5, 727)
    assert [total] == await storage.energy("site", ALL_TIME)
    assert await storage.energy_total("another") is None


async def test_an_unknown_span_is_stored_and_counts_no_time(
    storage: Storage, backend: str, storage_factory: tuple[str, Path]
) -> None:
    start = datetime(2026, 6, 14, 8, tzinfo=UTC)
    await write(storage, [energy_reading(start, 1, span=None, pv_wh=5.0)])
    await settle(backend, storage_factory)
    (hour,) = await storage.energy("site", (start, start + timedelta(hours=1)))
    assert hour is not None
    assert (hour.readings, hour.span_s, wh(hour)) == (1, 0.0, 5.0)
    (stored,) = await storage.readings("site", start, start + timedelta(seconds=1), 10)
    assert stored["energy"] == {"complete": True, "pv_wh": 5.0}


async def test_readings_without_energy_add_nothing(storage: Storage) -> None:
    start = datetime(2026, 6, 15, 8, tzinfo=UTC)
    body = {"seq": 1, "ts": start.isoformat(), "grid": {"power_w": 5.0}}
    await storage.write_readings([StoredReading("site", Reading.model_validate(body), start)])
    assert await storage.energy("site", (start, start + timedelta(hours=1))) == [None]


async def test_time_zones_are_kept_per_device(storage: Storage) -> None:
    assert await storage.device_timezone("site") is None
    await storage.set_device_timezone("site", BERLIN, datetime.now(UTC))
    await storage.set_device_timezone("other", "Asia/Kolkata", datetime.now(UTC))
    await storage.set_device_timezone("site", "America/St_Johns", datetime.now(UTC))
    assert await storage.device_timezone("site") == "America/St_Johns"
    assert await storage.device_timezone("other") == "Asia/Kolkata"


async def test_switching_timescaledb_off_and_on_keeps_every_sum(timescaledb_url: str) -> None:
    # TimescaleDB keeps the sums in its aggregate, the writer's table only without
    # it: each switch must find every reading stored so far, counted once.
    start = datetime(2026, 6, 16, 8, tzinfo=UTC)
    rows = steady(start, 360, 10.0, pv_wh=360.0)
    hour = (start, start + timedelta(hours=1))
    settings = {"on": TimescaleMode.REQUIRED, "off": TimescaleMode.OFF}
    for step, (mode, part, expected) in enumerate(
        [("off", rows[:90], 90.0), ("on", rows[90:180], 180.0), ("off", rows[180:270], 270.0),
         ("off", rows[270:], 360.0), ("on", [], 360.0)]
    ):  # fmt: skip
        options = postgres_options("timescaledb", mode=settings[mode])
        async with opened(PostgresStorage(timescaledb_url, options)) as storage:
            await write(storage, part)
            await write(storage, part[:10])  # a re-send adds nothing
            if mode == "on":
                await settle(TIMESCALE_BACKEND, (timescaledb_url, Path()))
            (found,) = await storage.energy("site", hour)
            assert wh(found) == expected, (step, mode)


async def test_retention_keeps_the_energy_of_dropped_readings(timescaledb_url: str) -> None:
    # Readings older than the retention are dropped; the aggregate keeps their energy,
    # and its refresh policy never reaches back into what retention dropped.
    options = postgres_options("timescaledb", retention=timedelta(days=30))
    old = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    hour = (old, old + timedelta(hours=1))
    async with opened(PostgresStorage(timescaledb_url, options)) as storage:
        await write(storage, steady(old, 360, 10.0, pv_wh=100.0))
        conn = await asyncpg.connect(timescaledb_url)
        try:
            # Materialised as it would have been while the readings were new.
            await conn.execute(f"CALL refresh_continuous_aggregate('{ENERGY_CAGG}', NULL, NULL)")
            await run_policy(conn, "policy_retention", "readings")
            assert await conn.fetchval("SELECT count(*) FROM readings") == 0
            await run_policy(conn, "policy_refresh_continuous_aggregate", ENERGY_CAGG)
        finally:
            await conn.close()
        (found,) = await storage.energy("site", hour)
        assert wh(found) == 100.0


async def test_a_backlog_below_the_watermark_shows_without_a_policy_run(
    timescaledb_url: str,
) -> None:
    # The aggregate materialised up to the live hour (as a policy run would leave it);
    # the policy's job never runs again here. Backlogs older than the watermark must
    # show at once: the writer refreshes their quarter hours itself.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    options = postgres_options("timescaledb")
    async with opened(PostgresStorage(timescaledb_url, options)) as storage:
        conn = await asyncpg.connect(timescaledb_url)
        try:
            await conn.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                "WHERE hypertable_name IS NOT NULL"
            )
            await write(storage, steady(now, 360, 10.0, first_seq=100_000, import_wh=360.0))
            await conn.execute(
                f"CALL refresh_continuous_aggregate('{ENERGY_CAGG}', NULL, $1::timestamptz)",
                now + timedelta(hours=1),
            )
            backlogs = {
                3: steady(now - timedelta(days=3), 360, 10.0, first_seq=10_000, import_wh=720.0),
                10: steady(now - timedelta(days=10), 360, 10.0, first_seq=20_000, import_wh=90.0),
            }
            for days, rows in backlogs.items():
                await write(storage, rows, batch=250)
                start = now - timedelta(days=days)
                (hour,) = await storage.energy("site", (start, start + timedelta(hours=1)))
                assert wh(hour, 1) == {3: 720.0, 10: 90.0}[days]
                assert hour is not None
                assert hour.readings == 360
            # Materialised, not read through: the view without its real-time part holds them.
            await conn.execute(
                f"ALTER MATERIALIZED VIEW {ENERGY_CAGG} SET (timescaledb.materialized_only = true)"
            )
            for days in backlogs:
                start = now - timedelta(days=days)
                total = await conn.fetchval(
                    f"SELECT sum(readings) FROM {ENERGY_CAGG} WHERE device_id = 'site' "
                    "AND bucket >= $1 AND bucket < $2",
                    start,
                    start + timedelta(hours=1),
                )
                assert total == 360, days
            # The live hour's quarter hours were materialised by the explicit refresh,
            # and nothing made the writer refresh more than the backlogs' hours.
            buckets = await conn.fetchval(f"SELECT count(*) FROM {ENERGY_CAGG}")
            assert buckets == 3 * 4
        finally:
            await conn.close()


async def test_switching_timescaledb_off_keeps_the_energy_retention_dropped(
    timescaledb_url: str,
) -> None:
    # The writer's table is computed again from the readings when TimescaleDB is
    # turned off; readings retention dropped count from the aggregate that kept them.
    old = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    recent = old + timedelta(days=35)
    retention = {"retention": timedelta(days=30)}
    async with opened(
        PostgresStorage(timescaledb_url, postgres_options("timescaledb", **retention))
    ) as storage:
        await write(storage, steady(old, 360, 10.0, pv_wh=100.0))
        await write(storage, steady(recent, 360, 10.0, pv_wh=200.0))
        conn = await asyncpg.connect(timescaledb_url)
        try:
            await conn.execute(f"CALL refresh_continuous_aggregate('{ENERGY_CAGG}', NULL, NULL)")
            await run_policy(conn, "policy_retention", "readings")
        finally:
            await conn.close()
    off = postgres_options("timescaledb", mode=TimescaleMode.OFF)
    async with opened(PostgresStorage(timescaledb_url, off)) as storage:
        assert await storage.readings("site", old, old + timedelta(hours=1), limit=10) == []
        (dropped,) = await storage.energy("site", (old, old + timedelta(hours=1)))
        (kept,) = await storage.energy("site", (recent, recent + timedelta(hours=1)))
        assert (wh(dropped), wh(kept)) == (100.0, 200.0)
