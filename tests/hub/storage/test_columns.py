"""The row <-> reading mapping, on plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.storage.columns import (
    FIELD_COLUMNS,
    NUMERIC_COLUMNS,
    READING_COLUMNS,
    ColumnKind,
    bucket_from_values,
    micros_from_utc,
    to_row,
    utc_from_micros,
    wire_from_row,
)
from telemetry import NUMERIC_FIELDS, SECTION_MODELS
from tests.hub.storage.helpers import BASE_TS, full_reading_body, stored, stored_unchecked


def test_one_column_per_protocol_field() -> None:
    fields = [(c.section, c.field) for c in FIELD_COLUMNS]
    assert fields == [(s, f) for s, m in SECTION_MODELS.items() for f in m.model_fields]
    numbers = [(c.section, c.field) for c in FIELD_COLUMNS if c.kind is ColumnKind.NUMBER]
    assert numbers == list(NUMERIC_FIELDS)
    assert {c.name for c in FIELD_COLUMNS if c.kind is ColumnKind.NUMBER_LIST} == {
        "grid_phase_voltage_v",
        "grid_phase_power_w",
    }
    assert len(set(READING_COLUMNS)) == len(READING_COLUMNS)


@pytest.mark.parametrize("seq", [0, 1, 2])
def test_a_row_reads_back_as_the_wire_form(seq: int) -> None:
    row_in = stored("dev-1", full_reading_body(BASE_TS, seq))
    row = to_row(row_in)
    assert len(row) == len(READING_COLUMNS)
    assert wire_from_row(row) == row_in.reading.to_wire()


def test_an_empty_section_survives() -> None:
    row_in = stored_unchecked("dev-1", {"ts": BASE_TS.isoformat(), "inverter": {}, "extra": {}})
    assert wire_from_row(to_row(row_in)) == {
        "ts": "2026-11-01T12:00:00Z",
        "inverter": {},
        "extra": {},
    }


@pytest.mark.parametrize(
    "value",
    [
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 26, 5, 30, 0, 123456, tzinfo=UTC),
        datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_microseconds_are_exact(value: datetime) -> None:
    micros = micros_from_utc(value)
    assert utc_from_micros(micros) == value
    assert micros == (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_a_bucket_leaves_out_what_has_no_value() -> None:
    averages: list[float | None] = [None] * len(NUMERIC_FIELDS)
    index = list(NUMERIC_FIELDS).index(("battery", "soc_pct"))
    averages[index] = 42.5
    assert bucket_from_values(BASE_TS, averages) == {
        "ts": "2026-11-01T12:00:00Z",
        "battery": {"soc_pct": 42.5},
    }


def test_a_bucket_rounds_to_the_resolution_and_never_says_minus_zero() -> None:
    values: list[float | None] = [None] * len(NUMERIC_FIELDS)
    values[list(NUMERIC_FIELDS).index(("grid", "power_w"))] = -0.04
    values[list(NUMERIC_FIELDS).index(("grid", "voltage_v"))] = 230.1 + 8.7e-15
    values[list(NUMERIC_FIELDS).index(("battery", "cell_voltage_min_v"))] = 3.24149999
    bucket = bucket_from_values(BASE_TS, values)
    assert bucket["grid"] == {"power_w": 0.0, "voltage_v": 230.1}
    assert str(bucket["grid"]["power_w"]) == "0.0"  # not -0.0
    assert bucket["battery"] == {"cell_voltage_min_v": 3.2415}


def test_counters_are_the_fields_that_only_grow() -> None:
    cumulative = {(c.section, c.field) for c in NUMERIC_COLUMNS if c.cumulative}
    assert cumulative == {
        ("inverter", "energy_total_wh"),
        ("grid", "import_energy_wh"),
        ("grid", "export_energy_wh"),
        ("solar", "energy_today_wh"),
        ("solar", "energy_total_wh"),
    }
