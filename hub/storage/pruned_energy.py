"""The energy of rollup buckets that retention deleted, kept as one row per device.

``--retain-rollups`` deletes the energy rollup's oldest quarter hours
(hub/storage/retention.py). Intervals that old have no energy any more, as
documented, but a device's all-time totals must not shrink: Home Assistant reads
the hub's totals as ``total_increasing`` sensors (hub/mqtt_bridge.py), and a
total that falls is a meter reset to it, after which it counts the whole
remaining total a second time. So the buckets a prune deletes are first added
into ``energy_pruned`` in the same transaction: each bucket is then either in
the rollup or in this row, never both and never neither, and
``Storage.energy_total`` is the sum over the two.

Where the buckets go:

- plain PostgreSQL: the retention task deletes ``energy_rollup``'s rows older than
  the horizon and folds the very rows it deleted, in one statement.
- SQLite: the same rows folded, then deleted, in one transaction.
- TimescaleDB: the continuous aggregate ``energy_15m`` has no retention policy; the
  retention task folds the buckets of its chunks that end before the horizon and
  drops exactly those chunks (``drop_chunks``), in one transaction. A chunk is
  the unit TimescaleDB drops, so the fold's edge is the last such chunk's end.

Hubs of a cluster run retention at once: the fold takes a lock on
``energy_pruned`` first (PostgreSQL), so a second hub's fold waits and then finds
the buckets gone. SQLite has one writer.
"""

from __future__ import annotations

from typing import Final

from hub.storage.energy import (
    ENERGY_CAGG,
    ENERGY_ROLLUP,
    SUM_COLUMNS,
    sum_columns_sql,
    sums_sql,
    upsert_assignments,
)

ENERGY_PRUNED: Final = "energy_pruned"
_SUMS: Final = ", ".join(SUM_COLUMNS)

# PostgreSQL: taken at the start of a fold's transaction. SHARE ROW EXCLUSIVE conflicts
# with itself (two folds take turns) but not with the readers of energy_total.
LOCK_SQL: Final = f"LOCK TABLE {ENERGY_PRUNED} IN SHARE ROW EXCLUSIVE MODE"

# TimescaleDB: the end of the last chunk of the energy aggregate's materialisation
# hypertable that ends at or before $1; NULL when none does (nothing to drop).
CAGG_CHUNKS_END_SQL: Final = (
    "SELECT max(c.range_end) FROM timescaledb_information.chunks c "
    "JOIN timescaledb_information.continuous_aggregates a "
    "ON c.hypertable_schema = a.materialization_hypertable_schema "
    "AND c.hypertable_name = a.materialization_hypertable_name "
    f"WHERE a.view_schema = current_schema() AND a.view_name = '{ENERGY_CAGG}' "
    "AND c.range_end <= $1"
)
# Drops the chunks whose every bucket is before $1 (the value of CAGG_CHUNKS_END_SQL).
DROP_CAGG_CHUNKS_SQL: Final = f"SELECT drop_chunks('{ENERGY_CAGG}', older_than => $1::timestamptz)"


def pruned_table_sql(*, text: str, integer: str, real: str) -> str:
    """``CREATE TABLE energy_pruned`` with a dialect's types: a rollup row without its bucket."""
    return f"""
CREATE TABLE IF NOT EXISTS {ENERGY_PRUNED} (
    device_id {text} PRIMARY KEY,
    {sum_columns_sql(integer=integer, real=real)}
)"""


def fold_sql(source: str, where: str) -> str:
    """Add the sums of ``source``'s buckets matching ``where`` into each device's row.

    Both dialects (``INSERT ... SELECT ... ON CONFLICT``); ``where`` carries the
    dialect's parameters. A device without such buckets gets no row. The ``WHERE``
    is what lets SQLite read ``ON CONFLICT`` as the upsert's (SQLite's UPSERT notes).
    SQLite and TimescaleDB delete the buckets after, in the same transaction: on
    SQLite it holds the write lock, on TimescaleDB only a refresh writes the
    aggregate, and none reaches back past retention (hub/storage/late_rollup.py).
    """
    return (
        f"INSERT INTO {ENERGY_PRUNED} (device_id, {_SUMS}) "
        f"SELECT device_id, {sums_sql()} FROM {source} WHERE {where} GROUP BY device_id "
        f"ON CONFLICT (device_id) DO UPDATE SET {upsert_assignments(ENERGY_PRUNED)}"
    )


def move_sql(where: str) -> str:
    """PostgreSQL: delete ``energy_rollup``'s buckets matching ``where`` and fold exactly
    the rows deleted, in one statement, so a bucket the writer adds to meanwhile is
    either folded with its addition or kept with it, never deleted unfolded."""
    return (
        f"WITH gone AS (DELETE FROM {ENERGY_ROLLUP} WHERE {where} "
        f"RETURNING device_id, {_SUMS}) " + fold_sql("gone", "true")
    )


def total_sql(relation: str, device: str) -> str:
    """A device's sums over its pruned row and every bucket of ``relation`` still kept.

    ``device`` is the dialect's parameter (``$1``, or ``?`` given twice on SQLite).
    Sums over no row are null: ``readings`` null means nothing was ever stored.
    """
    return (
        f"SELECT {sums_sql()} FROM ("
        f"SELECT {_SUMS} FROM {ENERGY_PRUNED} WHERE device_id = {device} "
        f"UNION ALL SELECT {_SUMS} FROM {relation} WHERE device_id = {device}) AS kept"
    )
