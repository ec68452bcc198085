"""Storage behaviour every backend shows: SQLite, and PostgreSQL with both write methods."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.storage.base import Storage, StorageUnavailable, TokenRecord
from hub.storage.columns import BUCKET_ORIGIN, NUMERIC_COLUMNS
from telemetry import NUMERIC_FIELDS, Reading
from tests.hub.storage.helpers import (
    BASE_TS,
    full_reading_body,
    make_storage,
    opened,
    simple,
    stored,
)

WIDE = (BASE_TS - timedelta(days=1), BASE_TS + timedelta(days=1))


async def test_migrations_rerun_on_an_existing_database(
    backend: str, storage_factory: tuple[str, Path]
) -> None:
    url, data_dir = storage_factory
    async with opened(make_storage(backend, url=url, data_dir=data_dir)) as first:
        await first.write_readings([simple("dev-1", BASE_TS, seq=1)])
    for seq in (2, 3):
        async with opened(make_storage(backend, url=url, data_dir=data_dir)) as again:
            rows = await again.readings("dev-1", *WIDE, limit=10)
            assert [row["seq"] for row in rows] == list(range(1, seq))  # nothing lost
            await again.write_readings([simple("dev-1", BASE_TS + timedelta(seconds=seq), seq=seq)])


async def test_same_device_and_ts_is_stored_once(storage: Storage) -> None:
    first = simple("dev-1", BASE_TS, seq=7, voltage_v=230.0)
    resent = simple("dev-1", BASE_TS, seq=7, voltage_v=231.0)  # same key, other values
    other = simple("dev-1", BASE_TS + timedelta(microseconds=1), seq=8)
    await storage.write_readings([first, resent, other])  # duplicate inside one batch
    await storage.write_readings([resent])  # and in a later batch
    await storage.write_readings([first, other])
    rows = await storage.readings("dev-1", *WIDE, limit=100)
    assert rows == [first.reading.to_wire(), other.reading.to_wire()]


async def test_same_ts_on_two_devices_is_two_readings(storage: Storage) -> None:
    await storage.write_readings([simple("a", BASE_TS, seq=1), simple("b", BASE_TS, seq=1)])
    assert len(await storage.readings("a", *WIDE, limit=10)) == 1
    assert len(await storage.readings("b", *WIDE, limit=10)) == 1


async def test_every_field_round_trips_in_wire_form(storage: Storage) -> None:
    readings = [
        stored("dev-1", full_reading_body(BASE_TS + timedelta(seconds=i), seq=i)) for i in range(3)
    ]
    sparse = [
        stored(
            "dev-1",
            {"ts": (BASE_TS + timedelta(minutes=1)).isoformat(), "inverter": {"state": "idle"}},
        ),
        stored(
            "dev-1",
            {
                "ts": "2026-11-01T12:02:00.000001+02:00",
                "battery": {"state": "idle"},
                "extra": {},
            },
        ),
        stored("dev-1", {"seq": 0, "ts": "2026-11-01T12:03:00Z", "solar": {"pv_power_w": 0}}),
    ]
    await storage.write_readings(readings + sparse)
    rows = await storage.readings("dev-1", *WIDE, limit=100)
    expected = sorted(readings + sparse, key=lambda s: s.reading.ts)
    assert rows == [s.reading.to_wire() for s in expected]
    # And the wire form is valid protocol again, equal to what came in.
    assert [Reading.model_validate(row) for row in rows] == [s.reading for s in expected]


async def test_readings_in_time_order_within_start_end_and_limit(storage: Storage) -> None:
    times = [BASE_TS + timedelta(seconds=s) for s in (50, 10, 40, 0, 30, 20)]
    await storage.write_readings(
        [simple("dev-1", ts, seq=int((ts - BASE_TS).seconds)) for ts in times]
    )
    await storage.write_readings([simple("dev-2", BASE_TS + timedelta(seconds=25), seq=1)])

    start, end = BASE_TS + timedelta(seconds=10), BASE_TS + timedelta(seconds=40)
    rows = await storage.readings("dev-1", start, end, limit=100)
    assert [row["seq"] for row in rows] == [10, 20, 30]  # start included, end excluded

    rows = await storage.readings("dev-1", *WIDE, limit=4)
    assert [row["seq"] for row in rows] == [0, 10, 20, 30]  # the first four in time
    rows = await storage.readings("dev-1", *WIDE, limit=4, newest_first=True)
    assert [row["seq"] for row in rows] == [50, 40, 30, 20]  # the last four, newest first
    assert await storage.readings("dev-1", *WIDE, limit=0) == []
    assert await storage.readings("nobody", *WIDE, limit=10) == []


def _expected_buckets(
    readings: list[Reading], start: datetime, end: datetime, width: timedelta
) -> list[dict[str, object]]:
    """Per-bucket means (a counter's last value) computed here, from the inputs, without SQL."""
    groups: dict[datetime, dict[tuple[str, str], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for reading in sorted(readings, key=lambda r: r.ts):
        if not start <= reading.ts < end:
            continue
        bucket = BUCKET_ORIGIN + ((reading.ts - BUCKET_ORIGIN) // width) * width
        for section, name in NUMERIC_FIELDS:
            part = getattr(reading, section)
            value = None if part is None else getattr(part, name)
            if value is not None:
                groups[bucket][(section, name)].append(value)
        groups[bucket]  # a bucket with rows but no numbers still exists
    out: list[dict[str, object]] = []
    for bucket in sorted(groups):
        entry: dict[str, object] = {"ts": bucket}
        for (section, name), values in groups[bucket].items():
            value = values[-1] if COLUMNS[(section, name)].cumulative else statistics.fmean(values)
            entry.setdefault(section, {})[name] = value  # type: ignore[index]
        out.append(entry)
    return out


COLUMNS = {(c.section, c.field): c for c in NUMERIC_COLUMNS}


def _assert_rounded_to_resolution(
    got: dict[tuple[datetime, str, str], float], want: dict[tuple[datetime, str, str], float]
) -> None:
    """Equal within each column's resolution, and no digit finer than it (no float noise)."""
    assert got.keys() == want.keys()
    for key, value in got.items():
        decimals = COLUMNS[key[1:]].decimals
        assert round(value, decimals) == value, key
        assert value == pytest.approx(want[key], abs=0.5 * 10**-decimals + 1e-9), key


def _flatten(buckets: list[dict[str, object]]) -> dict[tuple[datetime, str, str], float]:
    """``{(bucket ts, section, field): mean}``: flat, for pytest.approx."""
    flat: dict[tuple[datetime, str, str], float] = {}
    for bucket in buckets:
        ts = bucket["ts"]
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        assert isinstance(ts, datetime)
        for section, values in bucket.items():
            if section != "ts":
                assert isinstance(values, dict)
                for name, value in values.items():
                    flat[(ts, section, name)] = value
    return flat


def _bucket_times(buckets: list[dict[str, object]]) -> list[datetime]:
    return [
        ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
        for ts in (b["ts"] for b in buckets)
    ]


@pytest.mark.parametrize(
    ("offset_s", "length_s", "width_s"),
    [
        (0, 600, 60),
        (30, 400, 60),
        (0, 600, 15),
        (-3, 700, 120),
        (0, 600, 300),
        (0, 600, 3600),
        (7, 590, 45),
    ],
)
async def test_buckets_average_every_numeric_field(
    storage: Storage, offset_s: int, length_s: int, width_s: int
) -> None:
    readings = []
    for k in range(80):
        body: dict[str, object] = {
            "seq": k,
            "ts": (BASE_TS + timedelta(seconds=7 * k, microseconds=k * 1009)).isoformat(),
            "grid": {"power_w": (k * 37 % 11) * 10.5 - 20.0, "voltage_v": 229.0 + k % 3},
        }
        if k % 2 == 0:  # a field present in only some readings averages over those
            body["battery"] = {"soc_pct": 50.0 + k / 4}
        if k % 5 == 0:
            # energy_today_wh is a counter: a bucket keeps its last value, not the mean.
            body["solar"] = {"pv_power_w": 1000.0 * k, "energy_today_wh": 100.0 * k + k / 3}
        if k % 3 == 0:
            body["grid"]["import_energy_wh"] = 5_000.0 + k  # type: ignore[index]
        readings.append(stored("dev-1", body))
    await storage.write_readings(readings)
    await storage.write_readings([simple("dev-2", BASE_TS + timedelta(seconds=3))])

    start = BASE_TS + timedelta(seconds=offset_s)
    end = start + timedelta(seconds=length_s)
    width = timedelta(seconds=width_s)
    rows = await storage.buckets("dev-1", start, end, width)
    expected = _expected_buckets([r.reading for r in readings], start, end, width)
    assert expected  # the case is not vacuous
    assert _bucket_times(rows) == _bucket_times(expected)  # in time order, none missing
    _assert_rounded_to_resolution(_flatten(rows), _flatten(expected))


async def test_bucket_and_range_arguments_are_checked(storage: Storage) -> None:
    with pytest.raises(ValueError, match="bucket"):
        await storage.buckets("dev-1", *WIDE, timedelta(0))
    with pytest.raises(ValueError, match="after end"):
        await storage.readings("dev-1", WIDE[1], WIDE[0], limit=10)
    with pytest.raises(ValueError, match="UTC offset"):
        await storage.readings("dev-1", datetime(2026, 1, 1), WIDE[1], limit=10)
    with pytest.raises(ValueError, match="limit"):
        await storage.readings("dev-1", *WIDE, limit=-1)


async def test_devices_with_a_token_or_a_reading(storage: Storage) -> None:
    created = datetime(2026, 11, 1, tzinfo=UTC)
    await storage.add_token(TokenRecord("token-only", "hash-1", created))
    await storage.add_token(TokenRecord("both", "hash-2", created))
    newest = simple("both", BASE_TS + timedelta(hours=1), seq=99, voltage_v=240.0)
    # Newest written first: last_seen is the newest ts, not the last insert.
    await storage.write_readings([newest])
    await storage.write_readings(
        [simple("both", BASE_TS + timedelta(seconds=s), seq=s) for s in range(5)]
    )
    data_only = simple("data-only", BASE_TS, seq=None)
    await storage.write_readings([data_only])

    devices = {d.device_id: d for d in await storage.devices()}
    assert sorted(devices) == ["both", "data-only", "token-only"]
    assert devices["token-only"].last_seen is None
    assert devices["token-only"].last_reading is None
    assert devices["both"].last_seen == newest.reading.ts
    assert devices["both"].last_reading == newest.reading.to_wire()
    assert devices["data-only"].last_seen == data_only.reading.ts
    assert devices["data-only"].last_reading == data_only.reading.to_wire()


async def test_tokens_add_list_revoke(storage: Storage) -> None:
    assert await storage.tokens() == []
    t0 = datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=UTC)
    records = [
        TokenRecord("dev-b", "h2", t0 + timedelta(seconds=1)),
        TokenRecord("dev-a", "h1", t0),
        TokenRecord("dev-b", "h3", t0 + timedelta(seconds=2)),  # a device may hold several
    ]
    for record in records:
        await storage.add_token(record)
    assert await storage.tokens() == sorted(records, key=lambda r: r.created_at)

    assert await storage.revoke_tokens("dev-b") == 2
    assert await storage.revoke_tokens("dev-b") == 0
    assert await storage.revoke_tokens("nobody") == 0
    assert await storage.tokens() == [records[1]]
    assert [d.device_id for d in await storage.devices()] == ["dev-a"]


async def test_the_token_generation_moves_with_every_token_change(
    backend: str, storage_factory: tuple[str, Path]
) -> None:
    url, data_dir = storage_factory
    t0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    async with (
        opened(make_storage(backend, url=url, data_dir=data_dir)) as hub,
        opened(make_storage(backend, url=url, data_dir=data_dir)) as other,  # `ems hub token`
    ):
        seen = [await hub.token_generation()]

        async def moved() -> bool:
            now = await hub.token_generation()
            if now in seen:
                return False
            seen.append(now)
            return True

        await other.add_token(TokenRecord("dev-a", "h1", t0))
        assert await moved()
        await other.add_token(TokenRecord("dev-a", "h2", t0 + timedelta(seconds=1)))
        assert await moved()
        assert await other.revoke_tokens("nobody") == 0
        assert not await moved()
        assert await other.revoke_tokens("dev-a") == 2
        assert await moved()
        assert await other.revoke_tokens("dev-a") == 0
        assert not await moved()
        await hub.add_token(TokenRecord("dev-b", "h3", t0))  # the same connection counts too
        assert await moved()
        assert seen == sorted(seen)
    async with opened(make_storage(backend, url=url, data_dir=data_dir)) as reopened:
        assert await reopened.token_generation() == seen[-1]  # stored, not per process


async def test_a_closed_storage_is_unavailable(
    backend: str, storage_factory: tuple[str, Path]
) -> None:
    url, data_dir = storage_factory
    storage = make_storage(backend, url=url, data_dir=data_dir)
    with pytest.raises(StorageUnavailable):
        await storage.check()
    async with opened(storage):
        await storage.check()
    with pytest.raises(StorageUnavailable):
        await storage.write_readings([simple("dev-1", BASE_TS)])
    with pytest.raises(StorageUnavailable):
        await storage.devices()
    with pytest.raises(StorageUnavailable):
        await storage.token_generation()
