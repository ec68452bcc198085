"""The PostgreSQL schema: versioned migrations and the TimescaleDB steps, as SQL text.

Nothing here talks to a database: :mod:`hub.storage.migrate` runs these
statements in order, under an advisory lock, and records each applied version
in ``ems_schema_version``. Every statement is safe to run twice, because two
hubs may start together and a hub may stop half-way through a migration.

Tables (docs/architecture.md, "Guarantees": storage is idempotent on (device_id, ts)):

``readings``
    ``device_id, ts, seq, received_at, sections`` then one column per protocol
    field (:mod:`hub.storage.columns`): ``double precision`` for numbers,
    ``text`` for states, ``double precision[]`` for phase values; ``extra jsonb``;
    ``devices jsonb`` (version 3: each device's own values of a site with several
    devices per role, docs/protocol.md; null for every other reading).
    Primary key ``(device_id, ts)``: a re-sent reading is stored once, and every
    per-device time-range query is an index range scan.
``device_tokens``
    ``device_id, token_hash, created_at``; only hashes are stored.
``token_generation``
    One row, ``generation``: a counter that row-level triggers on ``device_tokens``
    bump in the transaction of every insert, update or delete (and a truncate),
    whoever makes it: ``ems hub token``, an operator in psql, or an ``ems`` from
    before schema version 2 (which refuses to open a newer schema, but may have opened it
    just before the upgrade), none of which needs to know about the counter.
    The hub reads it every ``token_refresh_s`` and reloads the tokens only when it
    moved, so an idle refresh costs the same with ten tokens or ten thousand.

With TimescaleDB (:func:`timescale_steps`): ``readings`` becomes a hypertable on
``ts``, compressed by ``device_id`` after a week, with the continuous aggregate
``readings_1m`` (per device and minute: the average and the count of every
numeric column, so wider buckets re-aggregate exactly).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from hub.storage.columns import (
    ENERGY_COLUMNS,
    FIELD_COLUMNS,
    NUMERIC_COLUMNS,
    ColumnKind,
    FieldColumn,
)
from hub.storage.energy import (
    ENERGY_BUCKET,
    ENERGY_CAGG,
    cagg_sql,
    rollup_table_sql,
    timezones_table_sql,
)

READINGS: Final = "readings"
TOKENS: Final = "device_tokens"
TOKEN_GENERATION: Final = "token_generation"
BUMP_TOKEN_GENERATION: Final = "ems_bump_token_generation"
VERSION_TABLE: Final = "ems_schema_version"
ROLLUP: Final = "readings_1m"
ROLLUP_WIDTH: Final = timedelta(minutes=1)

# Session-level advisory lock serialising migrations (key mixed with the schema
# name, so hubs in different schemas of one database do not wait on each other).
ADVISORY_LOCK_SQL: Final = "SELECT pg_advisory_lock(hashtext('ems_switchboard:' || $1))"
ADVISORY_UNLOCK_SQL: Final = "SELECT pg_advisory_unlock(hashtext('ems_switchboard:' || $1))"

_PG_TYPES: Final = {
    ColumnKind.NUMBER: "double precision",
    ColumnKind.TEXT: "text",
    ColumnKind.NUMBER_LIST: "double precision[]",
}

Statement = tuple[str, tuple[Any, ...]]


def pg_type(column: FieldColumn) -> str:
    return _PG_TYPES[column.kind]


def count_column(column: FieldColumn) -> str:
    """The rollup's per-minute count of non-null values of ``column``."""
    return f"n_{column.name}"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


VERSION_TABLE_SQL: Final = f"""
CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""

_FIELD_DDL: Final = ",\n    ".join(f"{c.name} {pg_type(c)}" for c in FIELD_COLUMNS)

MIGRATIONS: Final = (
    Migration(
        1,
        "readings and device tokens",
        (
            f"""
CREATE TABLE IF NOT EXISTS {READINGS} (
    device_id text NOT NULL,
    ts timestamptz NOT NULL,
    seq bigint,
    received_at timestamptz NOT NULL,
    sections smallint NOT NULL,
    {_FIELD_DDL},
    extra jsonb,
    PRIMARY KEY (device_id, ts)
)""",
            f"""
CREATE TABLE IF NOT EXISTS {TOKENS} (
    token_hash text PRIMARY KEY,
    device_id text NOT NULL,
    created_at timestamptz NOT NULL
)""",
            f"CREATE INDEX IF NOT EXISTS {TOKENS}_device_idx ON {TOKENS} (device_id)",
        ),
    ),
    Migration(
        2,
        "token generation counter",
        (
            f"""
CREATE TABLE IF NOT EXISTS {TOKEN_GENERATION} (
    id smallint PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL
)""",
            f"INSERT INTO {TOKEN_GENERATION} (id, generation) VALUES (1, 0) "
            "ON CONFLICT (id) DO NOTHING",
            # The table is named through TG_TABLE_SCHEMA, not the search_path: a
            # psql session with another search_path can still edit the tokens.
            # An upsert, so a deleted counter row comes back at the next change.
            f"""
CREATE OR REPLACE FUNCTION {BUMP_TOKEN_GENERATION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'INSERT INTO %I.{TOKEN_GENERATION} AS g (id, generation) VALUES (1, 1) '
        'ON CONFLICT (id) DO UPDATE SET generation = g.generation + 1',
        TG_TABLE_SCHEMA
    );
    RETURN NULL;
END
$$""",
            # CREATE OR REPLACE TRIGGER: PostgreSQL 14 (MIN_SERVER_VERSION).
            f"CREATE OR REPLACE TRIGGER {TOKENS}_generation "
            f"AFTER INSERT OR UPDATE OR DELETE ON {TOKENS} "
            f"FOR EACH ROW EXECUTE FUNCTION {BUMP_TOKEN_GENERATION}()",
            f"CREATE OR REPLACE TRIGGER {TOKENS}_generation_truncate "
            f"AFTER TRUNCATE ON {TOKENS} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {BUMP_TOKEN_GENERATION}()",
        ),
    ),
    Migration(
        3,
        "each device's own values (several devices per role)",
        # Nullable without a default: no rewrite of existing rows, and allowed on a
        # compressed hypertable.
        (f"ALTER TABLE {READINGS} ADD COLUMN IF NOT EXISTS devices jsonb",),
    ),
    Migration(
        4,
        "energy per reading, its rollup, and each device's time zone",
        (
            # Nullable without a default, as version 3: no rewrite, fine on compressed chunks.
            *(
                f"ALTER TABLE {READINGS} ADD COLUMN IF NOT EXISTS {name} "
                f"{'boolean' if name == 'energy_complete' else 'double precision'}"
                for name in ENERGY_COLUMNS
            ),
            # Kept by the writer on plain PostgreSQL (hub/storage/energy.py); TimescaleDB
            # reads its continuous aggregate instead and leaves this table empty.
            rollup_table_sql(
                text="text", bucket="timestamptz", integer="bigint", real="double precision"
            ),
            timezones_table_sql(text="text", instant="timestamptz"),
        ),
    ),
)
LATEST_VERSION: Final = MIGRATIONS[-1].version


def missing_column_statements(existing: set[str]) -> list[str]:
    """``ADD COLUMN`` for protocol fields newer than the table (a field added to telemetry)."""
    return [
        f"ALTER TABLE {READINGS} ADD COLUMN IF NOT EXISTS {c.name} {pg_type(c)}"
        for c in FIELD_COLUMNS
        if c.name not in existing
    ]


# Without TimescaleDB: the primary key serves every per-device query; a BRIN
# index on ts (tiny, cheap to maintain on time-ordered inserts) serves scans by
# time alone, such as an operator's manual clean-up.
PLAIN_STATEMENTS: Final = (
    f"CREATE INDEX IF NOT EXISTS {READINGS}_ts_brin ON {READINGS} USING brin (ts)",
)


class TimescaleMode(enum.Enum):
    """Whether to use TimescaleDB."""

    AUTO = "auto"  # use it when the extension can be created, else plain PostgreSQL
    REQUIRED = "required"  # refuse to start without it
    OFF = "off"  # plain PostgreSQL even where the extension exists


@dataclass(frozen=True, slots=True)
class TimescaleOptions:
    """TimescaleDB settings; by default one-day chunks compressed after a week, kept forever."""

    mode: TimescaleMode = TimescaleMode.AUTO
    chunk_interval: timedelta = timedelta(days=1)
    compress_after: timedelta | None = timedelta(days=7)
    retention: timedelta | None = None  # off by default: keep every reading
    # The refresh window reaches back a week so a backlog an edge re-sends after
    # a days-long outage still lands in the rollup (its buckets are invalidated
    # and re-materialised by the next run inside this window).
    rollup_refresh_start: timedelta = timedelta(days=7)
    rollup_refresh_end: timedelta = timedelta(minutes=1)
    rollup_refresh_every: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if self.chunk_interval <= timedelta(0):
            raise ValueError("chunk_interval must be positive")
        if self.rollup_refresh_start < self.rollup_refresh_end + 2 * ROLLUP_WIDTH:
            # add_continuous_aggregate_policy refuses a window of less than two
            # buckets ("policy refresh window too small").
            raise ValueError(
                "rollup_refresh_start must be at least two rollup buckets before rollup_refresh_end"
            )
        if self.retention is not None and self.retention <= self.rollup_refresh_start:
            # Dropping raw chunks inside the refresh window would erase rollup rows.
            raise ValueError("retention must be longer than rollup_refresh_start")


def rollup_sql() -> str:
    """The continuous aggregate; must run outside a transaction block (TimescaleDB docs)."""
    aggregates = ",\n    ".join(
        f"avg({c.name}) AS {c.name}, count({c.name}) AS {count_column(c)}" for c in NUMERIC_COLUMNS
    )
    # materialized_only = false: queries see the raw rows newer than the last
    # refresh too (real-time aggregation is off by default since 2.13).
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {ROLLUP}
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '1 minute', ts) AS bucket,
    {aggregates}
FROM {READINGS}
GROUP BY device_id, bucket
WITH DATA"""


def timescale_steps(
    options: TimescaleOptions, *, by_range_api: bool, compression_enabled: bool
) -> list[Statement]:
    """The TimescaleDB statements, each re-runnable, in the order they must run.

    ``by_range_api``: the extension is 2.13 or newer (``create_hypertable`` with
    ``by_range``; the older signature is deprecated there). ``compression_enabled``:
    the hypertable already has compression settings, which cannot be set again
    once chunks are compressed.
    """
    steps: list[Statement] = []
    if by_range_api:
        steps.append(
            (
                f"SELECT create_hypertable('{READINGS}', by_range('ts', $1::interval), "
                "if_not_exists => TRUE, migrate_data => TRUE)",
                (options.chunk_interval,),
            )
        )
    else:
        steps.append(
            (
                f"SELECT create_hypertable('{READINGS}', 'ts', chunk_time_interval => "
                "$1::interval, if_not_exists => TRUE, migrate_data => TRUE)",
                (options.chunk_interval,),
            )
        )
    # A changed interval applies to chunks created from now on.
    steps.append(
        (f"SELECT set_chunk_time_interval('{READINGS}', $1::interval)", (options.chunk_interval,))
    )
    # Policies are replaced rather than kept: add_*_policy(if_not_exists) leaves
    # an existing policy as it is (only a WARNING when its arguments differ), so
    # a changed interval would never apply, and the retention check in
    # TimescaleOptions would hold for a refresh window that is not the one in
    # force. A policy turned off in the configuration is removed. Retention goes
    # first and comes back last, so an old retention never runs alongside a new,
    # wider refresh window.
    steps.append((f"SELECT remove_retention_policy('{READINGS}', if_exists => TRUE)", ()))
    if options.compress_after is not None and not compression_enabled:
        steps.append(
            (
                f"ALTER TABLE {READINGS} SET (timescaledb.compress, "
                "timescaledb.compress_segmentby = 'device_id', "
                "timescaledb.compress_orderby = 'ts DESC')",
                (),
            )
        )
    steps.append((f"SELECT remove_compression_policy('{READINGS}', if_exists => TRUE)", ()))
    if options.compress_after is not None:
        steps.append(
            (
                f"SELECT add_compression_policy('{READINGS}', compress_after => $1::interval, "
                "if_not_exists => TRUE)",
                (options.compress_after,),
            )
        )
    steps.append((rollup_sql(), ()))
    steps.append((f"SELECT remove_continuous_aggregate_policy('{ROLLUP}', if_exists => TRUE)", ()))
    steps.append(
        (
            f"SELECT add_continuous_aggregate_policy('{ROLLUP}', start_offset => $1::interval, "
            "end_offset => $2::interval, schedule_interval => $3::interval, "
            "if_not_exists => TRUE)",
            (
                options.rollup_refresh_start,
                options.rollup_refresh_end,
                options.rollup_refresh_every,
            ),
        )
    )
    steps.append((cagg_sql(READINGS), ()))
    # The whole history (start_offset NULL), not a recent window: a backlog sent days
    # late invalidates old buckets, and only a refresh over them computes them again
    # (hub/storage/energy.py). A refresh redoes only invalidated buckets, so an idle one
    # is cheap whatever the history's length.
    steps.append(
        (f"SELECT remove_continuous_aggregate_policy('{ENERGY_CAGG}', if_exists => TRUE)", ())
    )
    steps.append(
        (
            f"SELECT add_continuous_aggregate_policy('{ENERGY_CAGG}', start_offset => NULL, "
            "end_offset => $1::interval, schedule_interval => $2::interval, "
            "if_not_exists => TRUE)",
            (ENERGY_BUCKET, options.rollup_refresh_every),
        )
    )
    if options.retention is not None:
        steps.append(
            (
                f"SELECT add_retention_policy('{READINGS}', drop_after => $1::interval)",
                (options.retention,),
            )
        )
    return steps


def rollup_columns() -> set[str]:
    """Every column the rollup must have for :func:`buckets` to read it instead of raw rows."""
    return {"device_id", "bucket"} | {
        name for c in NUMERIC_COLUMNS for name in (c.name, count_column(c))
    }
