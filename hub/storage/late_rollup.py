"""Which minutes of the 1-minute rollup a batch of late readings needs refreshed.

The continuous aggregate ``readings_1m`` (hub/storage/schema.py) is kept by a
refresh policy over a window, by default the last 7 days up to a minute ago.
TimescaleDB logs a row written below the aggregate's materialised edge as an
invalidation, but only a refresh whose window covers that row computes its
minute again, and the policy's window never reaches a row already older than
the window when it arrives: a backlog an edge sends after an outage longer than
the window (or a hub down that long) would never show in bucketed history,
which reads the rollup for whole-minute windows (hub/storage/postgres.py).

So after committing a batch, the writer refreshes the minutes of its rows that
the policy will not reach: those older than the window's start at the policy's
next run, with a margin for a late run. Rows inside the window are left to the
policy (one refresh per run for all of them, within ``rollup_refresh_every``).
The minutes are merged into few ranges, because each refresh call costs about
as much as committing a batch of a thousand rows (docs/benchmarks.md, "Late
backlog on TimescaleDB"), whatever its length.

The energy aggregate ``energy_15m`` (hub/storage/energy.py) is refreshed the same
way, by quarter hours: its policy's window reaches over the whole history, but that
policy is a background job, and until it runs (it may not run by itself at all on a
server whose job scheduler is off) a late reading below the aggregate's watermark
is invisible: real-time aggregation reads raw only the rows newer than the
watermark. So the writer refreshes the quarter hours of a batch's energy readings
older than the watermark (:func:`late_ranges` with ``width=ENERGY_BUCKET``); readings
newer than it are read through, and a live device's batch refreshes nothing.

With a retention policy, nothing older than the retention horizon (less a day) is
refreshed: a refresh computes its minutes again from the raw rows, and where
retention has dropped them it would erase the rollup rows kept from before (the
rollup outlives the raw rows, the reason retention must be longer than the refresh
window). Such a reading is stored, and dropped with its chunk at the next run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from hub.storage.columns import BUCKET_ORIGIN
from hub.storage.schema import ROLLUP_WIDTH, TimescaleOptions

# How late a policy run may start after its schedule (a busy job scheduler).
POLICY_SLACK: Final = timedelta(hours=1)
# Late minutes closer than this are refreshed as one range: a refresh recomputes
# every device's rows in its range, cheap next to a call's own cost for an hour.
MERGE_GAP: Final = timedelta(hours=1)
# Retention drops a chunk once its end is past the horizon: rows a day inside it
# are in a chunk that is still whole (chunks are a day by default, and the
# refresh runs within seconds of this check).
RETENTION_MARGIN: Final = timedelta(days=1)
MICROSECOND: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class RefreshRange:
    """``[start, end)``, both on minute edges: the rollup buckets to compute again."""

    start: datetime
    end: datetime


def policy_reach(options: TimescaleOptions, now: datetime) -> datetime:
    """The oldest instant the refresh policy still covers at its next run (with slack)."""
    return now - options.rollup_refresh_start + options.rollup_refresh_every + POLICY_SLACK


def retention_floor(options: TimescaleOptions, now: datetime) -> datetime | None:
    """The oldest instant whose raw rows retention surely keeps; None without retention."""
    if options.retention is None:
        return None
    return now - options.retention + max(RETENTION_MARGIN, options.chunk_interval)


def bucket_start(ts: datetime, width: timedelta = ROLLUP_WIDTH) -> datetime:
    """The start of the bucket ``width`` wide holding ``ts`` (edges as time_bucket's)."""
    return BUCKET_ORIGIN + ((ts - BUCKET_ORIGIN) // width) * width


def late_ranges(
    times: Iterable[datetime],
    reach: datetime,
    floor: datetime | None = None,
    *,
    width: timedelta = ROLLUP_WIDTH,
) -> list[RefreshRange]:
    """The merged bucket ranges (buckets ``width`` wide: minutes by default) holding
    every time older than ``reach`` (and, with a ``floor``, from the first whole bucket
    at or after it), in order."""
    # A bucket counts only whole at or after the floor: no range reaches below it.
    lowest = None if floor is None else bucket_start(floor - MICROSECOND, width) + width
    buckets = sorted(
        {bucket_start(ts, width) for ts in times if ts < reach and (lowest is None or ts >= lowest)}
    )
    ranges: list[RefreshRange] = []
    for bucket in buckets:
        if ranges and bucket - ranges[-1].end <= MERGE_GAP:
            ranges[-1] = RefreshRange(ranges[-1].start, bucket + width)
        else:
            ranges.append(RefreshRange(bucket, bucket + width))
    return ranges
