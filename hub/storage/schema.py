"""The schema's names and tables, and the TimescaleDB steps, as SQL text.

Nothing here talks to a database. The versioned tables, for PostgreSQL and SQLite
alike, are in :mod:`hub.storage.history` (one list of versions with each dialect's
statements, and the one runner); :mod:`hub.storage.migrate` runs them on PostgreSQL
under an advisory lock, then the TimescaleDB steps below. Every statement is safe to
run twice, because two hubs may start together and a hub may stop half-way through
a migration.

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
``extra_names`` (SQLite only, version 5; made again in version 7)
    ``id, digest, names, last_ts``: each list of ``extra`` names once, as a JSON
    array, unique by its ``digest``; a SQLite row's ``extra`` holds its list's id
    and the values, and its phase lists their values, packed
    (:mod:`hub.storage.sqlite_values`). ``last_ts`` is at least the ``ts`` of every
    reading that uses the list, so retention deletes a list once the oldest stored
    reading is newer; an id is never given twice (:mod:`hub.storage.name_lists`).
    PostgreSQL keeps ``jsonb``.

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

from hub.storage.columns import NUMERIC_COLUMNS, FieldColumn
from hub.storage.energy import ENERGY_BUCKET, ENERGY_CAGG, cagg_sql

READINGS: Final = "readings"
TOKENS: Final = "device_tokens"
TOKEN_GENERATION: Final = "token_generation"
BUMP_TOKEN_GENERATION: Final = "ems_bump_token_generation"
VERSION_TABLE: Final = "ems_schema_version"


def sqlite_device_ids(table: str) -> str:
    """SQLite: ``WITH RECURSIVE ids(device_id)``, the distinct device ids of ``table``
    by one ``min()`` probe on its primary key each (a B-tree seek, never a scan).

    Its last row is NULL (where the probes end): select ``WHERE device_id IS NOT NULL``.
    """
    return (
        f"WITH RECURSIVE ids(device_id) AS (SELECT min(device_id) FROM {table} UNION ALL "
        f"SELECT (SELECT min(t.device_id) FROM {table} t WHERE t.device_id > ids.device_id) "
        "FROM ids WHERE ids.device_id IS NOT NULL)"
    )


def sqlite_reading_ts(extreme: str) -> str:
    """SQLite: the oldest (``extreme`` ``min``) or newest (``max``) stored reading's ts,
    from each device's own by one seek on the primary key; NULL when there is none."""
    return (
        f"{sqlite_device_ids(READINGS)} SELECT {extreme}((SELECT {extreme}(r.ts) FROM "
        f"{READINGS} r WHERE r.device_id = ids.device_id)) FROM ids "
        "WHERE ids.device_id IS NOT NULL"
    )


# SQLite only (schema version 5): each list of `extra` names once (hub/storage/sqlite_values.py).
EXTRA_NAMES: Final = "extra_names"
EXTRA_NAMES_SQLITE: Final = (
    f"CREATE TABLE IF NOT EXISTS {EXTRA_NAMES} (id INTEGER PRIMARY KEY, names TEXT NOT NULL UNIQUE)"
)
# Version 7: the table again, with AUTOINCREMENT (an id is never given twice, so one
# cached by a hub can only be missing, never wrong), ``last_ts`` (microseconds, at
# least the ts of every reading that uses the list), indexed for retention's range,
# and ``digest`` (16 bytes of BLAKE2b of ``names``) unique in place of ``names``: an
# index of whole lists (1.2 KB for 47 names) took an overflow page per list, four
# times the list, and made deleting one slow (docs/benchmarks.md, "Deleting lists of
# extra names"). A list kept from version 5 has no digest (SQL cannot compute one; a
# hub storing the same names again gives them a new id, which is harmless) and gets
# the newest stored reading's ts (found by one seek on the primary key per device):
# no reading of it can be newer.
_EXTRA_NAMES_V5: Final = f"{EXTRA_NAMES}_v5"
_NEWEST_TS: Final = f"coalesce(({sqlite_reading_ts('max')}), 0)"
EXTRA_NAMES_V7_SQLITE: Final = (
    f"ALTER TABLE {EXTRA_NAMES} RENAME TO {_EXTRA_NAMES_V5}",
    f"CREATE TABLE {EXTRA_NAMES} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "digest BLOB UNIQUE, names TEXT NOT NULL, last_ts INTEGER NOT NULL)",
    f"INSERT INTO {EXTRA_NAMES} (id, names, last_ts) "
    f"SELECT id, names, {_NEWEST_TS} FROM {_EXTRA_NAMES_V5}",
    f"DROP TABLE {_EXTRA_NAMES_V5}",
    f"CREATE INDEX {EXTRA_NAMES}_last_ts ON {EXTRA_NAMES} (last_ts)",
)
ROLLUP: Final = "readings_1m"
ROLLUP_WIDTH: Final = timedelta(minutes=1)

# Session-level advisory lock serialising migrations (key mixed with the schema
# name, so hubs in different schemas of one database do not wait on each other).
ADVISORY_LOCK_SQL: Final = "SELECT pg_advisory_lock(hashtext('ems_switchboard:' || $1))"
ADVISORY_UNLOCK_SQL: Final = "SELECT pg_advisory_unlock(hashtext('ems_switchboard:' || $1))"

Statement = tuple[str, tuple[Any, ...]]


def count_column(column: FieldColumn) -> str:
    """The rollup's per-minute count of non-null values of ``column``."""
    return f"n_{column.name}"


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
    # The continuous aggregates' own retention (readings_1m's policy; energy_15m's
    # chunks dropped by the hub, hub/storage/pruned_energy.py): at least the
    # readings', since a bucket dropped here is never computed again.
    rollup_retention: timedelta | None = None
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
        if self.rollup_retention is not None and (
            self.retention is None or self.rollup_retention < self.retention
        ):
            raise ValueError("rollup_retention must be at least retention")


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


def energy_refresh_start(options: TimescaleOptions) -> timedelta | None:
    """How far back the energy aggregate's policy refreshes: everything (None), or with
    retention a day less than it (retention is longer than a week, see TimescaleOptions)."""
    return None if options.retention is None else options.retention - timedelta(days=1)


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
    # is cheap whatever the history's length. With retention, the window stops a day
    # short of it: a refresh over chunks retention dropped would compute their buckets
    # from no readings and erase them, and the energy of readings dropped from the
    # hypertable is kept in the aggregate.
    steps.append(
        (f"SELECT remove_continuous_aggregate_policy('{ENERGY_CAGG}', if_exists => TRUE)", ())
    )
    steps.append(
        (
            f"SELECT add_continuous_aggregate_policy('{ENERGY_CAGG}', "
            "start_offset => $1::interval, end_offset => $2::interval, "
            "schedule_interval => $3::interval, if_not_exists => TRUE)",
            (energy_refresh_start(options), ENERGY_BUCKET, options.rollup_refresh_every),
        )
    )
    for view in (ROLLUP, ENERGY_CAGG):
        steps.append((f"SELECT remove_retention_policy('{view}', if_exists => TRUE)", ()))
    # The energy aggregate has none: the hub's retention task drops its old chunks
    # after keeping their sums (hub/storage/pruned_energy.py), which a policy's job
    # cannot do. A database made by an older hub loses its policy above.
    if options.rollup_retention is not None:
        steps.append(
            (
                f"SELECT add_retention_policy('{ROLLUP}', drop_after => $1::interval)",
                (options.rollup_retention,),
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
