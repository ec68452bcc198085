"""The PostgreSQL schema text and TimescaleDB steps, checked on plain values (no database)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import asyncpg
import pytest

from hub.storage.base import StorageConfigError
from hub.storage.columns import NUMERIC_COLUMNS, READING_COLUMNS
from hub.storage.history import MIGRATIONS, Dialect, missing_column_statements
from hub.storage.migrate import (
    TIMESCALE_PRELOADED_SQL,
    _timescale,
    _timescale_preloaded,
    parse_version,
)
from hub.storage.schema import (
    TimescaleMode,
    TimescaleOptions,
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
    assert "timescaledb.compress" not in sql
    assert "add_compression_policy" not in sql
    assert "add_retention_policy" not in sql  # off by default
    # A policy a former configuration added is removed, not left running.
    assert "SELECT remove_compression_policy('readings', if_exists => TRUE)" in sql
    assert "SELECT remove_retention_policy('readings', if_exists => TRUE)" in sql


@pytest.mark.parametrize("compression_enabled", [True, False])
def test_every_policy_is_replaced_so_changed_intervals_apply(compression_enabled: bool) -> None:
    # add_*_policy(if_not_exists => TRUE) keeps an existing policy with other
    # arguments (a WARNING only), so each policy is removed first.
    options = TimescaleOptions(retention=timedelta(days=30), rollup_retention=timedelta(days=3650))
    sql = _sql(timescale_steps(options, by_range_api=True, compression_enabled=compression_enabled))
    verbs = [s.split("(", 1)[0].removeprefix("SELECT ") for s in sql if s.startswith("SELECT")]
    for policy in ("compression", "continuous_aggregate", "retention"):
        add, remove = f"add_{policy}_policy", f"remove_{policy}_policy"
        # Two continuous aggregates: readings_1m and energy_15m. Retention: the
        # readings' and readings_1m's; energy_15m's is removed and never added
        # (the hub drops its chunks after keeping their sums, hub/storage/pruned_energy.py).
        count = {"compression": 1, "continuous_aggregate": 2, "retention": 3}[policy]
        assert verbs.count(remove) == count, verbs
        assert verbs.count(add) == count - (policy == "retention"), verbs
        assert verbs.index(remove) < verbs.index(add), verbs
    for view in ("readings_1m", "energy_15m"):
        removed = sql.index(
            f"SELECT remove_continuous_aggregate_policy('{view}', if_exists => TRUE)"
        )
        added = next(
            i
            for i, s in enumerate(sql)
            if s.startswith(f"SELECT add_continuous_aggregate_policy('{view}'")
        )
        assert removed < added
    removal = next(s for s in sql if s.startswith("SELECT remove_continuous_aggregate_policy"))
    assert removal == (
        "SELECT remove_continuous_aggregate_policy('readings_1m', if_exists => TRUE)"
    )
    for view in ("readings_1m", "energy_15m"):
        assert sql.index(
            f"SELECT remove_retention_policy('{view}', if_exists => TRUE)"
        ) > sql.index(f"SELECT remove_continuous_aggregate_policy('{view}', if_exists => TRUE)")
    assert "SELECT add_retention_policy('readings_1m', drop_after => $1::interval)" in sql
    assert not any(s.startswith("SELECT add_retention_policy('energy_15m'") for s in sql)
    # No old retention alongside the new refresh window: retention is removed
    # before the refresh policy is replaced and added back after it.
    assert verbs.index("remove_retention_policy") < verbs.index("add_continuous_aggregate_policy")
    assert verbs.index("add_retention_policy") > verbs.index("add_continuous_aggregate_policy")
    # The rollup's policy comes after the rollup exists.
    create = next(i for i, s in enumerate(sql) if s.startswith("CREATE MATERIALIZED VIEW"))
    assert create < sql.index(removal)


def test_retention_inside_the_refresh_window_is_refused() -> None:
    with pytest.raises(ValueError, match="retention must be longer"):
        TimescaleOptions(retention=timedelta(days=1))


def test_a_refresh_window_under_two_buckets_is_refused() -> None:
    # TimescaleDB: "policy refresh window too small" below two buckets.
    with pytest.raises(ValueError, match="two rollup buckets"):
        TimescaleOptions(
            rollup_refresh_start=timedelta(minutes=2), rollup_refresh_end=timedelta(minutes=1)
        )
    TimescaleOptions(
        rollup_refresh_start=timedelta(minutes=3), rollup_refresh_end=timedelta(minutes=1)
    )


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


def test_the_migrations_create_every_reading_column() -> None:
    create = MIGRATIONS[0].statements(Dialect.POSTGRES)[0]
    declared = re.findall(r"^ +(\w+) ", create, flags=re.MULTILINE)
    # Version 3 adds `devices` (each device's own values).
    assert MIGRATIONS[2].statements(Dialect.POSTGRES) == (
        "ALTER TABLE readings ADD COLUMN IF NOT EXISTS devices jsonb",
    )
    # Version 4 adds the energy increments.
    energy = [
        re.findall(r"ADD COLUMN IF NOT EXISTS (\w+)", s)
        for s in MIGRATIONS[3].statements(Dialect.POSTGRES)
    ]
    added = [names[0] for names in energy if names]
    assert [c for c in declared if c != "PRIMARY"] + ["devices", *added] == list(READING_COLUMNS)
    assert "PRIMARY KEY (device_id, ts)" in create
    assert missing_column_statements(Dialect.POSTGRES, READING_COLUMNS) == []
    assert missing_column_statements(
        Dialect.POSTGRES, set(READING_COLUMNS) - {"battery_state"}
    ) == ["ALTER TABLE readings ADD COLUMN IF NOT EXISTS battery_state text"]


class _Catalogue:
    """Answers the catalogue look-ups of the TimescaleDB detection; records statements run."""

    def __init__(self, *, preloaded: bool, installed: str | None, available: str | None) -> None:
        self.answers = {
            TIMESCALE_PRELOADED_SQL: preloaded,
            "pg_extension": installed,
            "pg_available_extensions": available,
        }
        self.executed: list[str] = []

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return next(answer for key, answer in self.answers.items() if key in sql)

    async def execute(self, sql: str, *args: Any) -> str:
        self.executed.append(sql)
        return ""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield


def _conn(catalogue: _Catalogue) -> asyncpg.Connection:
    return cast(asyncpg.Connection, catalogue)


async def test_without_the_preloaded_library_create_extension_is_never_tried() -> None:
    # There CREATE EXTENSION timescaledb ends the session (FATAL "must be
    # preloaded"), which no transaction or savepoint survives.
    catalogue = _Catalogue(preloaded=False, installed=None, available="2.14.2")
    assert not await _timescale_preloaded(_conn(catalogue))
    status = await _timescale(_conn(catalogue), TimescaleMode.AUTO, preloaded=False)
    assert not status.present
    assert "not in shared_preload_libraries" in status.reason
    with pytest.raises(StorageConfigError, match=r"required but .*shared_preload_libraries"):
        await _timescale(_conn(catalogue), TimescaleMode.REQUIRED, preloaded=False)
    assert catalogue.executed == []


async def test_an_installed_but_not_preloaded_extension_is_a_config_error() -> None:
    # Every TimescaleDB call (its DDL event triggers included) would end the session.
    catalogue = _Catalogue(preloaded=False, installed="2.14.2", available="2.14.2")
    with pytest.raises(StorageConfigError, match="shared_preload_libraries"):
        await _timescale_preloaded(_conn(catalogue))
    assert catalogue.executed == []


async def test_with_the_preloaded_library_the_extension_is_created() -> None:
    catalogue = _Catalogue(preloaded=True, installed=None, available="2.14.2")
    assert await _timescale_preloaded(_conn(catalogue))
    await _timescale(_conn(catalogue), TimescaleMode.AUTO, preloaded=True)
    assert catalogue.executed == ['CREATE EXTENSION IF NOT EXISTS "timescaledb"']
