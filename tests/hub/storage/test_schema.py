"""The PostgreSQL schema text and TimescaleDB steps, checked on plain values (no database)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from hub.storage.columns import NUMERIC_COLUMNS, READING_COLUMNS
from hub.storage.migrate import parse_version
from hub.storage.schema import (
    MIGRATIONS,
    TimescaleOptions,
    missing_column_statements,
    rollup_columns,
    rollup_sql,
    timescale_steps,
)


def _sql(steps: list[tuple[str, tuple[object, ...]]]) -> list[str]:
    return [" ".join(sql.split()) for sql, _ in steps]


@pytest.mark.parametrize("by_range_api", [True, False])
@pytest.mark.parametrize("compression_enabled", [True, False])
def test_every_timescale_step_can_run_twice(by_range_api: bool, compression_enabled: bool) -> None:
    options = TimescaleOptions(retention=timedelta(days=365))
    for sql in _sql(
        timescale_steps(options, by_range_api=by_range_api, compression_enabled=compression_enabled)
    ):
        rerunnable = (
            "if_not_exists => TRUE" in sql
            or "IF NOT EXISTS" in sql
            or "if_exists => TRUE" in sql
            or sql.startswith("SELECT set_chunk_time_interval")
            # add_retention_policy right after its removal
            or sql.startswith("SELECT add_retention_policy")
            # the compression settings are only emitted when absent
            or (
                sql.startswith("ALTER TABLE readings SET (timescaledb.compress")
                and not compression_enabled
            )
        )
        assert rerunnable, sql


def test_hypertable_api_follows_the_extension_version() -> None:
    new = _sql(timescale_steps(TimescaleOptions(), by_range_api=True, compression_enabled=False))
    old = _sql(timescale_steps(TimescaleOptions(), by_range_api=False, compression_enabled=False))
    assert "by_range('ts', $1::interval)" in new[0]
    assert "'ts', chunk_time_interval => $1::interval" in old[0]
    assert parse_version("2.13.0") >= (2, 13) > parse_version("2.12.2")
    assert parse_version("2.14.0-dev") == (2, 14, 0)


def test_configured_intervals_are_passed_as_parameters() -> None:
    options = TimescaleOptions(
        chunk_interval=timedelta(hours=6),
        compress_after=timedelta(days=3),
        retention=timedelta(days=90),
    )
    steps = timescale_steps(options, by_range_api=True, compression_enabled=False)
    args = {" ".join(sql.split())[:40]: params for sql, params in steps}
    flat = [p for params in args.values() for p in params]
    assert timedelta(hours=6) in flat
    assert timedelta(days=3) in flat
    assert timedelta(days=90) in flat
    compress = next(sql for sql in _sql(steps) if "SET (timescaledb.compress" in sql)
    assert "compress_segmentby = 'device_id'" in compress
    assert "compress_orderby = 'ts DESC'" in compress


def test_compression_and_retention_are_optional() -> None:
    options = TimescaleOptions(compress_after=None)
    sql = " ".join(_sql(timescale_steps(options, by_range_api=True, compression_enabled=False)))
    assert "compress" not in sql
    assert "retention" not in sql  # off by default


def test_retention_inside_the_refresh_window_is_refused() -> None:
    with pytest.raises(ValueError, match="retention must be longer"):
        TimescaleOptions(retention=timedelta(days=1))


def test_the_rollup_averages_and_counts_every_numeric_column() -> None:
    sql = " ".join(rollup_sql().split())
    assert "WITH (timescaledb.continuous, timescaledb.materialized_only = false)" in sql
    assert "time_bucket(INTERVAL '1 minute', ts) AS bucket" in sql
    for column in NUMERIC_COLUMNS:
        assert (
            f"avg({column.name}) AS {column.name}," in sql
            or f"avg({column.name}) AS {column.name} " in sql
        )
        assert f"count({column.name}) AS n_{column.name}" in sql
    assert rollup_columns() >= {c.name for c in NUMERIC_COLUMNS} | {"bucket", "device_id"}


def test_the_first_migration_creates_every_reading_column() -> None:
    create = MIGRATIONS[0].statements[0]
    declared = re.findall(r"^ +(\w+) ", create, flags=re.MULTILINE)
    assert [c for c in declared if c != "PRIMARY"] == list(READING_COLUMNS)
    assert "PRIMARY KEY (device_id, ts)" in create
    assert missing_column_statements(set(READING_COLUMNS)) == []
    assert missing_column_statements(set(READING_COLUMNS) - {"battery_state"}) == [
        "ALTER TABLE readings ADD COLUMN IF NOT EXISTS battery_state text"
    ]
