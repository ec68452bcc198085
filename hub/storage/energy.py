"""Energy rollups: per device and quarter hour, the sums of the readings' increments.

The edge sends, in each reading, the Wh of each quantity over the reading's
span (docs/protocol.md, "Energy"); a reading is stored once by its
(device_id, ts) key, so a rollup is a plain sum of the stored readings, exact
however late or often a reading arrives.

Why a quarter hour rather than an hour: the intervals a site asks for are its
own hours, days and months, and a local hour or midnight is a whole UTC hour
only in zones whose offset is whole hours. India (+05:30), Newfoundland
(-03:30), Nepal (+05:45) and the Chatham Islands (+12:45) are not, but every
zone's offset since 1980 is a multiple of 15 minutes, so quarter-hour buckets
(aligned on UTC) add up exactly to any zone's hours, days, months and years.

Where the sums live:

- TimescaleDB: the continuous aggregate ``energy_15m`` over ``readings``
  (real time, so the open quarter hour is read raw), refreshed over the whole
  history: a backlog sent days late invalidates its buckets, and the next
  refresh computes them again from the stored readings. The writer does not wait
  for that policy run: it refreshes the quarter hours of a batch's readings older
  than the aggregate's watermark itself (hub/storage/late_rollup.py).
- plain PostgreSQL and SQLite: the table ``energy_rollup``, which the writer
  updates in the transaction that inserts the readings, with only the rows that
  were really inserted (a re-sent reading adds nothing).

Each bucket keeps: ``readings`` (how many readings carried energy),
``incomplete`` (how many said part of their span was not measured), ``span_s``
(the seconds their spans cover; an unknown span counts as none) and
``max_span_s``, and one sum per quantity (null when no reading gave it: unknown
is not zero).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from telemetry.reading import ENERGY_QUANTITIES

T = TypeVar("T", datetime, int)

ENERGY_BUCKET: Final = timedelta(minutes=15)
ENERGY_BUCKET_US: Final = ENERGY_BUCKET // timedelta(microseconds=1)
ENERGY_ROLLUP: Final = "energy_rollup"  # the writer's table (plain PostgreSQL, SQLite)
ENERGY_CAGG: Final = "energy_15m"  # TimescaleDB's continuous aggregate
DEVICE_TIMEZONES: Final = "device_timezones"
# Buckets start at whole quarter hours of UTC (the Unix epoch is one).
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The edges of one interval holding every bucket (Storage.energy over it gives what
# Storage.energy_total does, by way of intervals): a reading's ts is after 2020 and
# at most minutes ahead of the hub's clock (docs/protocol.md, "A reading"), so both
# edges are far outside any stored one.
ALL_TIME: Final = (_EPOCH, datetime(3000, 1, 1, tzinfo=UTC))

# Columns of a rollup row after (device_id, bucket), in this order everywhere.
SUM_COLUMNS: Final = ("readings", "incomplete", "span_s", "max_span_s", *ENERGY_QUANTITIES)


@dataclass(frozen=True, slots=True)
class EnergySums:
    """What a bucket, or an interval of buckets, adds up to."""

    readings: int
    incomplete: int
    span_s: float
    max_span_s: float
    quantities: tuple[float | None, ...]  # in ENERGY_QUANTITIES order; None: unknown

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> EnergySums:
        """From the values of :data:`SUM_COLUMNS`, as a database returns them."""
        return cls(
            int(values[0] or 0),
            int(values[1] or 0),
            float(values[2] or 0.0),
            float(values[3] or 0.0),
            tuple(None if v is None else float(v) for v in values[4:]),
        )

    def values(self) -> tuple[Any, ...]:
        """In :data:`SUM_COLUMNS` order."""
        return (self.readings, self.incomplete, self.span_s, self.max_span_s, *self.quantities)

    def plus(self, other: EnergySums) -> EnergySums:
        return EnergySums(
            self.readings + other.readings,
            self.incomplete + other.incomplete,
            self.span_s + other.span_s,
            max(self.max_span_s, other.max_span_s),
            tuple(_add(a, b) for a, b in zip(self.quantities, other.quantities, strict=True)),
        )

    def covers(self, length: timedelta) -> bool:
        """Whether the readings measured all of an interval ``length`` long.

        Every reading complete, and their spans adding up to the interval: a
        reading's span may start in the interval before (it is counted where it
        ends), so the sum may fall short by up to one span.
        """
        if self.readings == 0 or self.incomplete:
            return False
        return self.span_s + self.max_span_s >= length.total_seconds() * (1 - 1e-9)


def _add(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def bucket_of(ts: datetime) -> datetime:
    """The quarter hour (UTC-aligned) holding ``ts``."""
    return ts - (ts - _EPOCH) % ENERGY_BUCKET


def bucket_of_micros(ts_us: int) -> int:
    return ts_us - ts_us % ENERGY_BUCKET_US


def check_edges(edges: Sequence[datetime]) -> None:
    """Raise ``ValueError`` unless ``edges`` are increasing whole quarter hours (at least two)."""
    if len(edges) < 2:
        raise ValueError("at least two edges are needed (one interval)")
    for before, after in itertools.pairwise(edges):
        if after <= before:
            raise ValueError("edges must increase")
    for edge in edges:
        if edge.tzinfo is None or (edge - _EPOCH) % ENERGY_BUCKET:
            raise ValueError(f"edge {edge.isoformat()} is not a whole quarter hour")


def group_buckets(
    edges: Sequence[Any], buckets: Iterable[tuple[Any, EnergySums]]
) -> list[EnergySums | None]:
    """Sums per interval ``[edges[i], edges[i+1])`` from ``(bucket start, sums)``; None if empty.

    ``edges`` and the bucket starts are comparable values of one kind (datetimes,
    or SQLite's microseconds); buckets outside the edges are ignored.
    """
    out: list[EnergySums | None] = [None] * (len(edges) - 1)
    for start, sums in buckets:
        index = bisect.bisect_right(edges, start) - 1
        if 0 <= index < len(out):
            current = out[index]
            out[index] = sums if current is None else current.plus(sums)
    return out


def rollup_deltas(
    rows: Iterable[tuple[str, T, Sequence[Any]]], bucket: Callable[[T], T]
) -> dict[tuple[str, T], EnergySums]:
    """Per (device_id, bucket): the sums of newly stored readings.

    ``rows``: (device_id, ts, the row's energy values in ``ENERGY_COLUMNS``
    order) of readings that were really inserted; rows without energy
    (``complete`` None) are skipped; an unknown span counts as 0 s. ``bucket``
    maps a ts to its bucket's start (:func:`bucket_of` for datetimes,
    :func:`bucket_of_micros` for SQLite's).
    """
    # Plain lists, no object per row: this runs on the writer's path, per reading.
    totals: dict[tuple[str, T], list[Any]] = {}
    width = len(ENERGY_QUANTITIES)
    for device_id, ts, values in rows:
        energy: Sequence[Any] = values
        complete = energy[1]
        if complete is None:
            continue
        span = energy[0] or 0.0
        key = (device_id, bucket(ts))
        acc = totals.get(key)
        if acc is None:
            totals[key] = [1, 0 if complete else 1, span, span, *energy[2:]]
            continue
        acc[0] += 1
        if not complete:
            acc[1] += 1
        acc[2] += span
        if span > acc[3]:
            acc[3] = span
        for index in range(4, 4 + width):
            value = energy[index - 2]
            if value is not None:
                held = acc[index]
                acc[index] = value if held is None else held + value
    return {
        key: EnergySums(
            acc[0],
            acc[1],
            float(acc[2]),
            float(acc[3]),
            tuple(None if v is None else float(v) for v in acc[4:]),
        )
        for key, acc in totals.items()
    }


def sums_sql(alias: str = "") -> str:
    """SQL: :data:`SUM_COLUMNS` added up over rollup rows (``alias``: ``"r."`` or none),
    in that order: counts and seconds summed, the longest span the largest, each
    quantity summed (null when no row knew it)."""
    return ", ".join(
        (
            f"sum({alias}readings)",
            f"sum({alias}incomplete)",
            f"sum({alias}span_s)",
            f"max({alias}max_span_s)",
            *(f"sum({alias}{name})" for name in ENERGY_QUANTITIES),
        )
    )


def upsert_assignments(existing: str = ENERGY_ROLLUP, new: str = "excluded") -> str:
    """``SET`` of an upsert adding a delta row ``new`` to the stored row ``existing``.

    Written for both dialects: null (unknown) plus a value is the value.
    """
    parts = [
        f"readings = {existing}.readings + {new}.readings",
        f"incomplete = {existing}.incomplete + {new}.incomplete",
        f"span_s = {existing}.span_s + {new}.span_s",
        f"max_span_s = CASE WHEN {new}.max_span_s > {existing}.max_span_s "
        f"THEN {new}.max_span_s ELSE {existing}.max_span_s END",
    ]
    parts += [
        f"{name} = CASE WHEN {new}.{name} IS NULL THEN {existing}.{name} "
        f"WHEN {existing}.{name} IS NULL THEN {new}.{name} "
        f"ELSE {existing}.{name} + {new}.{name} END"
        for name in ENERGY_QUANTITIES
    ]
    return ", ".join(parts)


def sum_columns_sql(*, integer: str, real: str) -> str:
    """The column definitions of :data:`SUM_COLUMNS` with a dialect's types."""
    quantities = (f"{name} {real}" for name in ENERGY_QUANTITIES)
    return ",\n    ".join(
        (
            f"readings {integer} NOT NULL",
            f"incomplete {integer} NOT NULL",
            f"span_s {real} NOT NULL",
            f"max_span_s {real} NOT NULL",
            *quantities,
        )
    )


def rollup_table_sql(*, text: str, bucket: str, integer: str, real: str) -> str:
    """``CREATE TABLE energy_rollup`` with a dialect's types."""
    return f"""
CREATE TABLE IF NOT EXISTS {ENERGY_ROLLUP} (
    device_id {text} NOT NULL,
    bucket {bucket} NOT NULL,
    {sum_columns_sql(integer=integer, real=real)},
    PRIMARY KEY (device_id, bucket)
)"""


def timezones_table_sql(*, text: str, instant: str) -> str:
    """``CREATE TABLE device_timezones``: each device's latest IANA zone, from its health frames."""
    return f"""
CREATE TABLE IF NOT EXISTS {DEVICE_TIMEZONES} (
    device_id {text} PRIMARY KEY,
    timezone {text} NOT NULL,
    updated_at {instant} NOT NULL
)"""


def rebuild_rollup_sql(readings: str) -> tuple[str, ...]:
    """``energy_rollup`` computed again from ``readings`` (PostgreSQL), in one transaction.

    For a database that ran on TimescaleDB and now runs without it: the writer did
    not keep the table meanwhile (the continuous aggregate did), so it is stale.
    Buckets whose readings retention dropped are taken from the aggregate, which
    kept their sums (hub/storage/retention.py: rollups outlive readings).
    """
    sums = ", ".join(f"sum(energy_{name})" for name in ENERGY_QUANTITIES)
    columns = ", ".join(("device_id", "bucket", *SUM_COLUMNS))
    return (
        f"DELETE FROM {ENERGY_ROLLUP}",
        f"INSERT INTO {ENERGY_ROLLUP} ({columns}) "
        "SELECT device_id, date_bin('15 minutes', ts, TIMESTAMPTZ '1970-01-01 00:00:00+00'), "
        "count(*), count(CASE WHEN energy_complete = false THEN 1 END), "
        f"coalesce(sum(energy_span_s), 0), coalesce(max(energy_span_s), 0), {sums} "
        f"FROM {readings} WHERE energy_complete IS NOT NULL GROUP BY 1, 2",
        f"INSERT INTO {ENERGY_ROLLUP} ({columns}) SELECT {columns} FROM {ENERGY_CAGG} a "
        f"WHERE NOT EXISTS (SELECT 1 FROM {ENERGY_ROLLUP} r "
        "WHERE r.device_id = a.device_id AND r.bucket = a.bucket)",
        # Gone, so the next start without TimescaleDB does not rebuild again; a start
        # with it creates the aggregate anew, from every reading.
        f"DROP MATERIALIZED VIEW IF EXISTS {ENERGY_CAGG}",
    )


def cagg_sql(readings: str) -> str:
    """TimescaleDB's continuous aggregate over ``readings``; must run outside a transaction."""
    sums = ",\n    ".join(f"sum(energy_{name}) AS {name}" for name in ENERGY_QUANTITIES)
    # materialized_only = false: the quarter hour not yet materialised is read raw.
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {ENERGY_CAGG}
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
    time_bucket(INTERVAL '15 minutes', ts) AS bucket,
    count(*) AS readings,
    count(CASE WHEN energy_complete = false THEN 1 END) AS incomplete,
    coalesce(sum(energy_span_s), 0) AS span_s,
    coalesce(max(energy_span_s), 0) AS max_span_s,
    {sums}
FROM {readings}
WHERE energy_complete IS NOT NULL
GROUP BY device_id, bucket
WITH DATA"""
