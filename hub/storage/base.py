"""The storage interface every backend implements (PostgreSQL/TimescaleDB, SQLite).

The hub's cold path and HTTP API speak only to this interface; which backend
sits behind it is chosen once, at start-up, from the database URL.

Exceptions::

    StorageError
     ├── StorageUnavailable   the database cannot be reached or the connection broke;
     │                        the writer keeps the batch unacked and reconnects with backoff
     └── StorageConfigError   the URL, the options or the database's schema cannot work
                              (unknown scheme, schema newer than this hub, TimescaleDB
                              required but missing); retrying will not help

A bad argument to a query (an empty time range, a zero bucket) raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from telemetry import Reading

if TYPE_CHECKING:
    from hub.storage.energy import EnergySums


class StorageError(Exception):
    """Base of the storage layer's own errors."""


class StorageUnavailable(StorageError):
    """The database is unreachable or the connection broke mid-operation."""


class StorageConfigError(StorageError):
    """The storage cannot work as configured; retrying will not help."""


# A reading as one backend's row (hub/storage/columns.py); opaque to everyone else.
PreparedRow = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class StoredReading:
    """One validated reading on its way into storage."""

    device_id: str
    reading: Reading
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device the hub knows: it has a token or a stored reading."""

    device_id: str
    last_seen: datetime | None  # ts of its newest stored reading
    last_reading: dict[str, Any] | None  # that reading in wire form (docs/protocol.md)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A device token as stored: only its hash, never the token itself."""

    device_id: str
    token_hash: str
    created_at: datetime


class Storage(Protocol):
    """What the hub needs from a database. Every method may raise ``StorageUnavailable``."""

    async def open(self) -> None:
        """Connect and create or migrate the schema (versioned, re-runnable)."""

    async def close(self) -> None:
        """Release every connection."""

    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the database answers now."""

    async def write_readings(self, rows: Sequence[StoredReading]) -> None:
        """Store rows in one transaction; idempotent on (device_id, ts).

        When this returns, every row is committed (or was already stored).
        """

    def prepare(self, stored: StoredReading) -> PreparedRow:
        """The row this backend writes for ``stored``; pure, no I/O, a few microseconds.

        The batch writer calls it when a reading is queued, so its queue holds
        plain rows instead of the validated models (about 20 objects the
        garbage collector walks, per reading), and a batch's commit has nothing
        left to convert on the event loop.
        """

    async def write_prepared(self, rows: Sequence[PreparedRow]) -> None:
        """:meth:`write_readings` for rows made by :meth:`prepare`."""

    async def readings(
        self,
        device_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        *,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Stored readings with ``start <= ts < end`` in wire form, at most ``limit``.

        Oldest first (the first ``limit`` from ``start``), or with ``newest_first``
        newest first (the last ``limit`` before ``end``).
        """

    async def buckets(
        self, device_id: str, start: datetime, end: datetime, bucket: timedelta
    ) -> list[dict[str, Any]]:
        """Per-bucket values of every numeric field: ``[{"ts", "inverter": {...}, ...}]``.

        The mean of each field, but a cumulative counter's last value in the
        bucket; each rounded to its column's resolution (hub/storage/columns.py).
        """

    async def energy(self, device_id: str, edges: Sequence[datetime]) -> list[EnergySums | None]:
        """The device's energy per interval ``[edges[i], edges[i+1])``; None where none was stored.

        ``edges``: increasing instants on whole quarter hours (hub/storage/energy.py),
        as a site's local hours, days and months always are; else ``ValueError``.
        """

    async def energy_total(self, device_id: str) -> EnergySums | None:
        """The device's energy over every stored quarter hour; None if none was stored.

        One sum over the device's rollup rows and the sums of those retention deleted
        (hub/storage/pruned_energy.py), in the database: what the MQTT bridge reads
        per connected site every minute (hub/mqtt_bridge.py).
        """

    async def device_timezone(self, device_id: str) -> str | None:
        """The IANA zone of the device's latest health frame that named one, or None."""

    async def set_device_timezone(self, device_id: str, timezone: str, at: datetime) -> None:
        """Keep ``timezone`` as the device's zone (it outlives the hub's process)."""

    async def devices(self) -> list[DeviceRecord]:
        """Every device with a token or a stored reading."""

    async def add_token(self, record: TokenRecord) -> None:
        """Store a new token hash for a device (a device may hold several)."""

    async def tokens(self) -> list[TokenRecord]:
        """Every live token, oldest first."""

    async def token_generation(self) -> int:
        """A number that changes whenever the stored tokens change; one small query.

        Any change counts, from any process (``ems hub token add|revoke``, or SQL
        by hand): the database bumps it in the change's own transaction. A
        revocation of nothing leaves it alone. Read it before :meth:`tokens`, so
        a change committed between the two is seen again at the next read.
        """

    async def prune(
        self, readings_before: datetime | None, rollups_before: datetime | None, limit: int
    ) -> int:
        """Delete up to ``limit`` readings older than ``readings_before``, and the energy
        rollup's buckets older than ``rollups_before``, in one short transaction.

        Returns how many readings were deleted (on SQLite with the lists of ``extra``
        names no stored reading uses any more, hub/storage/name_lists.py, deleted in
        what is left of the batch): fewer than ``limit`` means none older is left.
        None deletes nothing of its kind. The rollup buckets deleted are first added
        into the device's row of ``energy_pruned``, so :meth:`energy_total` keeps them
        (hub/storage/pruned_energy.py). On TimescaleDB its retention policies drop the
        readings' chunks instead, this drops only the energy aggregate's, and returns 0
        (hub/storage/retention.py).
        """

    async def revoke_tokens(self, device_id: str) -> int:
        """Delete every token of a device; returns how many there were."""
