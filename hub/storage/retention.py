"""How long stored readings and their rollups are kept, and the durations that say it.

Raw readings are the bulk of a database (docs/benchmarks.md, "Storage size": a few
KB per reading, about 0.4 GB a day per device at 1 Hz on SQLite); the rollups are small (the
energy rollup is 96 rows a day per device), and they are what answers energy
questions over years. So the two have their own horizons, and the rollups' may
never be shorter than the readings': a rollup is never computed again from raw
rows that are gone (hub/storage/energy.py, hub/storage/late_rollup.py), so the
energy of dropped readings is kept as long as its rollup.

Defaults: readings for 400 days (a full year back from any day of this one, with a
month to spare, for year-on-year charts at full resolution), rollups for 10 years.
``off`` keeps either for ever.

Where retention runs: TimescaleDB drops the readings' and the minute rollup's
whole chunks by its retention policies (hub/storage/schema.py); SQLite and plain
PostgreSQL delete in batches from the hub's retention task (hub/runtime.py), each
batch a short transaction of its own, so the writer waits at most one batch. The
energy rollup's quarter hours past retention are deleted by that task on every
backend (TimescaleDB: the aggregate's whole chunks), their sums kept in each
device's all-time total (hub/storage/pruned_energy.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from hub.storage.base import StorageConfigError

DEFAULT_READINGS: Final = timedelta(days=400)
DEFAULT_ROLLUPS: Final = timedelta(days=3650)
# TimescaleDB's retention must be longer than the minute rollup's refresh window
# (hub/storage/schema.py, TimescaleOptions): the same floor on every backend.
MIN_READINGS: Final = timedelta(days=8)
# Rows deleted per transaction: on SQLite 28-56 ms of the write lock for full readings
# (docs/benchmarks.md, "Storage size"), the longest a writer's commit waits for it.
PRUNE_BATCH: Final = 1000
OFF: Final = frozenset({"off", "forever", "never"})
_UNITS: Final = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
_DURATION: Final = re.compile(r"(\d+)\s*([mhdwy])")


def parse_duration(text: str, key: str) -> timedelta | None:
    """``"90d"``, ``"12w"``, ``"10y"`` (365-day years), ``"36h"``; ``off`` is None (for ever).

    ``key`` names the setting in the error (``--retain-readings``).
    """
    value = text.strip().lower()
    if value in OFF:
        return None
    match = _DURATION.fullmatch(value)
    if match is None or int(match[1]) == 0:
        raise StorageConfigError(
            f"{key}: {text!r} is not a duration such as 90d, 12w, 10y (or off)"
        )
    return int(match[1]) * _UNITS[match[2]]


@dataclass(frozen=True, slots=True)
class Retention:
    """How long raw readings and rollups are kept; None: for ever."""

    readings: timedelta | None = DEFAULT_READINGS
    rollups: timedelta | None = DEFAULT_ROLLUPS

    def __post_init__(self) -> None:
        if self.readings is not None and self.readings < MIN_READINGS:
            raise StorageConfigError(
                f"--retain-readings: at least {MIN_READINGS.days} days, not {self.readings}"
            )
        if self.rollups is not None and (self.readings is None or self.rollups < self.readings):
            raise StorageConfigError(
                "--retain-rollups: must be at least --retain-readings (rollups are "
                "never computed again from dropped readings)"
            )

    def readings_before(self, now: datetime) -> datetime | None:
        """Readings older than this are dropped; None: none are."""
        return None if self.readings is None else now - self.readings

    def rollups_before(self, now: datetime) -> datetime | None:
        return None if self.rollups is None else now - self.rollups


KEEP_ALL: Final = Retention(readings=None, rollups=None)
