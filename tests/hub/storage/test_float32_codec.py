"""Float32 stand-ins on TimescaleDB (hub/storage/float32_codec.py): exact both ways.

Every test writes through ``PostgresStorage`` into a real TimescaleDB and reads back
through it; the raw table is looked at only to see what was stored.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from drivers.registers import float32_decimal
from hub.storage import float32_codec
from hub.storage.base import StoredReading
from hub.storage.columns import FIELD_COLUMNS, ColumnKind
from hub.storage.float32_codec import CODEC_BITS, CODEC_COLUMNS, MASK_COLUMN, SESSION_SETTINGS
from hub.storage.postgres import PostgresStorage, WriteMethod
from hub.storage.schema import TimescaleMode
from telemetry import SECTION_MODELS
from telemetry.reading import Reading
from tests.hub.storage.helpers import BASE_TS, opened, postgres_options

pytestmark = pytest.mark.timescaledb

SECOND = timedelta(seconds=1)
DEVICE = "meter-1"

# The bits are on disk (float32_mask): this list only ever grows at its end.
BIT_ORDER = (
    "inverter_ac_power_w",
    "inverter_ac_voltage_v",
    "inverter_ac_current_a",
    "inverter_ac_frequency_hz",
    "inverter_dc_power_w",
    "inverter_temperature_c",
    "grid_power_w",
    "grid_voltage_v",
    "grid_current_a",
    "grid_frequency_hz",
    "grid_power_factor",
    "grid_phase_voltage_v",
    "grid_phase_power_w",
    "solar_pv_power_w",
    "solar_pv_voltage_v",
    "solar_pv_current_a",
    "battery_soc_pct",
    "battery_soh_pct",
    "battery_power_w",
    "battery_voltage_v",
    "battery_current_a",
    "battery_temperature_c",
    "battery_cell_voltage_min_v",
    "battery_cell_voltage_max_v",
)


def test_the_bits_keep_their_fields() -> None:
    names = tuple(c.name for c in CODEC_COLUMNS)
    assert names[: len(BIT_ORDER)] == BIT_ORDER, (
        "a field's bit moved: data on disk would be misread"
    )


def test_counters_and_states_are_never_stand_ins() -> None:
    for column in FIELD_COLUMNS:
        if column.kind is ColumnKind.TEXT or column.cumulative:
            assert column.name not in CODEC_BITS, column.name


@pytest.mark.parametrize(
    ("value", "survives"),
    [
        (229.6281, True),
        (0.0, True),
        (-0.0, True),
        (1e30, True),
        (1e300, False),
        (-1e300, False),
        (3.5e38, False),
        (1e-300, False),
        (1e-40, False),
        (229.62840270996094, False),
        (float("nan"), False),
        (float("inf"), False),
    ],
)
async def test_the_test_never_casts_a_value_float4_cannot_hold(
    postgres_url: str, value: float, survives: bool
) -> None:
    """Out of float4's range the cast would fail the whole batch: the test says false first."""
    scalar = next(c for c in CODEC_COLUMNS if c.kind is ColumnKind.NUMBER)
    phases = next(c for c in CODEC_COLUMNS if c.kind is ColumnKind.NUMBER_LIST)
    conn = await asyncpg.connect(postgres_url, server_settings=SESSION_SETTINGS)
    try:
        # From a set, as the writer's values come: a constant would be folded when
        # planned, before any CASE could keep the cast from it.
        got = await conn.fetchrow(
            f"SELECT {float32_codec.survives(scalar, 'v')}, "
            f"{float32_codec.survives(phases, 'ARRAY[230.1, v]')}, "
            f"{float32_codec.survives(phases, 'CASE WHEN v = v THEN NULL END::float8[]')}, "
            f"{float32_codec.survives(phases, 'ARRAY[]::float8[] || ARRAY[]::float8[]')} "
            "FROM unnest($1::float8[]) AS t(v)",
            [value],
        )
    finally:
        await conn.close()
    assert tuple(got) == (survives, survives, False, False)


def _f32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


def _same(got: Any, want: Any) -> bool:
    """Equal, and a float bit for bit (the sign of zero included)."""
    if isinstance(want, float):
        return isinstance(got, float) and struct.pack(">d", got) == struct.pack(">d", want)
    if isinstance(want, list):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    return bool(got == want)


def _body(index: int, grid: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    return {"seq": index, "ts": (BASE_TS + index * SECOND).isoformat(), "grid": grid, **sections}


def _row(body: dict[str, Any]) -> StoredReading:
    """``body`` as stored, past the wire's ranges: storage holds what older hubs let in."""
    reading = Reading.model_construct(
        seq=body["seq"],
        ts=datetime.fromisoformat(body["ts"]),
        **{
            name: SECTION_MODELS[name].model_construct(**values)
            for name, values in body.items()
            if name in SECTION_MODELS
        },
    )
    return StoredReading(DEVICE, reading, datetime.now(UTC))


# (what it is, the grid section sent, the grid fields stored as stand-ins)
CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    (
        "a float32 meter's shortest decimals",
        {
            "power_w": -1234.5679,
            "voltage_v": 229.6281,
            "current_a": 5.371,
            "frequency_hz": 49.98,
            "power_factor": 0.9871,
            "phase_voltage_v": [229.6281, 230.1, 231.04],
        },
        {"power_w", "voltage_v", "current_a", "frequency_hz", "power_factor", "phase_voltage_v"},
    ),
    (
        "a float32 sent with all its binary digits, which no float32 text reads back as",
        {"power_w": 100.0, "voltage_v": 229.62840270996094, "phase_voltage_v": [230.1999969482422]},
        {"power_w"},
    ),
    (
        "doubles with more digits than a float32 holds",
        {"power_w": 1234.56789012, "voltage_v": 0.1 + 0.2, "current_a": math.pi},
        set(),
    ),
    (
        "below float32's range, and zeros",
        {"power_w": 1e-300, "voltage_v": 1e-45, "current_a": -0.0, "frequency_hz": 0.0},
        {"current_a", "frequency_hz"},
    ),
    (
        "a phase list with one value a float32 cannot hold",
        {"power_w": 5.0, "phase_voltage_v": [230.1, 1e-300], "phase_power_w": [1e-40, 2.0]},
        {"power_w"},
    ),
    (
        "a counter stays as it came",
        {"power_w": 1.5, "import_energy_wh": 123456780.0, "export_energy_wh": 1234567.8},
        {"power_w"},
    ),
]


@pytest.fixture(params=[WriteMethod.COPY, WriteMethod.UNNEST], ids=lambda m: m.value)
async def timescale(
    request: pytest.FixtureRequest, timescaledb_url: str
) -> AsyncIterator[PostgresStorage]:
    options = postgres_options("timescaledb")
    options = type(options)(
        write_method=request.param,
        timescale=options.timescale,
        connect_timeout_s=options.connect_timeout_s,
    )
    async with opened(PostgresStorage(timescaledb_url, options)) as storage:
        assert isinstance(storage, PostgresStorage)
        yield storage


async def _stored_rows(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(f"SELECT *, {MASK_COLUMN} FROM readings ORDER BY ts"))
    finally:
        await conn.close()


async def _read_back(storage: PostgresStorage, count: int) -> list[dict[str, Any]]:
    return await storage.readings(DEVICE, BASE_TS, BASE_TS + (count + 1) * SECOND, count + 1)


async def test_each_kind_of_value_reads_back_exactly_and_only_short_decimals_are_narrowed(
    timescale: PostgresStorage, timescaledb_url: str
) -> None:
    bodies = [_body(i, grid) for i, (_, grid, _) in enumerate(CASES)]
    await timescale.write_readings([_row(body) for body in bodies])

    got = await _read_back(timescale, len(bodies))
    for (what, _, _), body, row in zip(CASES, bodies, got, strict=True):
        assert _same(row["grid"], body["grid"]), what

    for (what, grid, narrowed), row in zip(CASES, await _stored_rows(timescaledb_url), strict=True):
        marked = {c.field for c in CODEC_COLUMNS if row[MASK_COLUMN] & CODEC_BITS[c.name]}
        assert marked & set(grid) == narrowed, what
        for field in narrowed:
            value, sent = row[f"grid_{field}"], grid[field]
            if isinstance(sent, list):
                assert value == [_f32(v) for v in sent], what
            else:
                assert _same(value, _f32(sent)), what


async def test_thousands_of_random_values_read_back_bit_for_bit(
    timescale: PostgresStorage,
) -> None:
    """Shortest float32 decimals over every exponent, short decimals, and random doubles."""
    rng = random.Random(20261204)
    values: list[float] = []
    while len(values) < 3000:
        kind = len(values) % 3
        if kind == 0:  # a float32 register's value as the agent sends it
            bits = rng.getrandbits(32)
            value = float(struct.unpack(">f", bits.to_bytes(4, "big"))[0])
            if not math.isfinite(value):
                continue
            values.append(float32_decimal(value))
        elif kind == 1:  # an integer register with a decimal scale
            values.append(rng.randint(-(10**6), 10**6) / 10 ** rng.randint(0, 4))
        else:
            values.append(rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-12, 12))
    readings = [
        _row(
            _body(
                i,
                {"power_w": values[3 * i], "voltage_v": values[3 * i + 1]},
                battery={"soc_pct": 50.0, "current_a": values[3 * i + 2]},
            ),
        )
        for i in range(len(values) // 3)
    ]
    await timescale.write_readings(readings)
    got = await _read_back(timescale, len(readings))
    assert len(got) == len(readings)
    for i, row in enumerate(got):
        want = [values[3 * i], values[3 * i + 1], values[3 * i + 2]]
        have = [row["grid"]["power_w"], row["grid"]["voltage_v"], row["battery"]["current_a"]]
        assert _same(have, want), (i, want, have)


async def test_a_compressed_chunk_reads_back_exactly(
    timescale: PostgresStorage, timescaledb_url: str
) -> None:
    bodies = [_body(i, grid) for i, (_, grid, _) in enumerate(CASES)]
    await timescale.write_readings([_row(body) for body in bodies])
    conn = await asyncpg.connect(timescaledb_url)
    try:
        compressed = await conn.fetch("SELECT compress_chunk(c) FROM show_chunks('readings') c")
        assert compressed
    finally:
        await conn.close()
    got = await _read_back(timescale, len(bodies))
    assert [_same(row["grid"], body["grid"]) for row, body in zip(got, bodies, strict=True)] == [
        True
    ] * len(bodies)


async def test_a_database_that_prints_floats_short_is_still_read_exactly(
    timescale: PostgresStorage, timescaledb_url: str
) -> None:
    """Stand-ins written, then ``extra_float_digits = 0`` (six digits) set on the database.

    Read with six digits, 229.6281's float32 would come back as 229.628: the
    storage pins the setting on its own connections.
    """
    body = _body(0, {"power_w": -1234.5679, "voltage_v": 229.6281})
    await timescale.write_readings([_row(body)])
    await timescale.close()
    (written,) = await _stored_rows(timescaledb_url)
    assert written[MASK_COLUMN] & CODEC_BITS["grid_voltage_v"]
    conn = await asyncpg.connect(timescaledb_url)
    try:
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{database}" SET extra_float_digits = 0')
    finally:
        await conn.close()
    async with opened(PostgresStorage(timescaledb_url, postgres_options("timescaledb"))) as again:
        assert isinstance(again, PostgresStorage)
        (row,) = await _read_back(again, 1)
    assert _same(row["grid"], body["grid"])


async def test_rows_with_stand_ins_read_exactly_with_timescaledb_turned_off(
    timescale: PostgresStorage, timescaledb_url: str
) -> None:
    bodies = [_body(i, grid) for i, (_, grid, _) in enumerate(CASES)]
    await timescale.write_readings([_row(body) for body in bodies])
    await timescale.close()
    plain = PostgresStorage(
        timescaledb_url, postgres_options("postgres-copy", mode=TimescaleMode.OFF)
    )
    async with opened(plain) as storage:
        assert isinstance(storage, PostgresStorage)
        later = _body(len(bodies), {"power_w": 1.5, "voltage_v": 229.6281})
        await storage.write_readings([_row(later)])
        got = await _read_back(storage, len(bodies) + 1)
    for row, body in zip(got, [*bodies, later], strict=True):
        assert _same(row["grid"], body["grid"])
    assert (await _stored_rows(timescaledb_url))[-1][MASK_COLUMN] is None  # written as it came


async def test_bucket_averages_of_stand_ins_round_to_the_decimals_sent(
    timescale: PostgresStorage,
) -> None:
    voltages = [229.6281, 229.7013, 230.1187, 229.9999]
    readings = [
        _row(_body(i, {"power_w": 1234.5679, "voltage_v": voltages[i % 4]})) for i in range(120)
    ]
    # Older than the refresh policy's reach: the writer refreshes their minutes itself.
    await timescale.write_readings(readings)
    buckets = await timescale.buckets(
        DEVICE, BASE_TS, BASE_TS + timedelta(minutes=2), timedelta(minutes=1)
    )
    mean = round(sum(voltages) / 4, 2)
    assert [b["grid"]["voltage_v"] for b in buckets] == [mean, mean]
    assert [b["grid"]["power_w"] for b in buckets] == [1234.6, 1234.6]
