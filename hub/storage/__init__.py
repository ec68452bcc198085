"""The hub's storage: one interface (:mod:`hub.storage.base`), two backends.

``postgresql://`` / ``postgres://`` URLs use PostgreSQL through asyncpg, with
TimescaleDB's features when the extension can be created (docs/configuration.md,
"Storage"); no URL means the embedded SQLite file ``<data dir>/hub.db``, the data
dir being ``$EMS_DATA_DIR`` or ``./ems-data`` (:func:`data_dir_from`, the one
place that default is written). Backends are imported only when chosen, so a
hub on SQLite never loads asyncpg.

    async with storage_from_url(os.environ.get("EMS_DATABASE_URL")) as storage:
        await storage.write_readings(rows)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from hub.storage.base import (
    DeviceRecord,
    Storage,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
    StoredReading,
    TokenRecord,
)

if TYPE_CHECKING:
    from hub.storage.postgres import PostgresOptions
    from hub.storage.retention import Retention
    from hub.storage.sqlite import SqliteOptions

POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
DEFAULT_DATA_DIR: Final = Path("ems-data")
DATABASE_FILE: Final = "hub.db"

__all__ = [
    "DATABASE_FILE",
    "DEFAULT_DATA_DIR",
    "DeviceRecord",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "StorageUnavailable",
    "StoredReading",
    "TokenRecord",
    "create_storage",
    "data_dir_from",
    "describe_storage",
    "open_storage",
    "storage_from_url",
]


def data_dir_from(environ: Mapping[str, str]) -> Path:
    """``$EMS_DATA_DIR`` when set and not empty, else ``./ems-data``."""
    return Path(environ.get("EMS_DATA_DIR") or DEFAULT_DATA_DIR)


def describe_storage(database_url: str | None, data_dir: Path | None = None) -> str:
    """Which storage a URL and data dir mean, for a person, without any password.

    ``PostgreSQL at postgresql://ems@db:5432/ems`` or ``SQLite file /abs/ems-data/hub.db``.
    """
    if database_url:
        parts = urlsplit(database_url)
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        host = f"{user}@{netloc[2]}" if user else netloc[2]
        kind = "PostgreSQL" if parts.scheme.lower() in POSTGRES_SCHEMES else "database"
        return f"{kind} at {parts.scheme}://{host}{parts.path}"
    path = (data_dir or data_dir_from(os.environ)) / DATABASE_FILE
    return f"SQLite file {path.absolute()}"


def create_storage(
    database_url: str | None,
    data_dir: Path | None = None,
    *,
    postgres: PostgresOptions | None = None,
    sqlite: SqliteOptions | None = None,
    retention: Retention | None = None,
) -> Storage:
    """The backend for ``database_url``, not yet opened.

    ``postgres`` / ``sqlite``: the options of the backend that is chosen (the
    other is ignored). ``retention``: on TimescaleDB, its retention policies
    (elsewhere the hub's retention task deletes, hub/storage/retention.py).
    Raises ``StorageConfigError`` for any other URL scheme.
    """
    if database_url:
        scheme = urlsplit(database_url).scheme.lower()
        if scheme not in POSTGRES_SCHEMES:
            raise StorageConfigError(
                f"unsupported database URL scheme {scheme + '://' if scheme else database_url!r}: "
                "use postgresql://user@host:port/dbname, or no URL for the embedded SQLite file"
            )
        from hub.storage.postgres import PostgresOptions, PostgresStorage

        if retention is not None:
            options = postgres or PostgresOptions()
            timescale = replace(
                options.timescale, retention=retention.readings, rollup_retention=retention.rollups
            )
            postgres = replace(options, timescale=timescale)
        return PostgresStorage(database_url, postgres)
    from hub.storage.sqlite import SqliteStorage

    return SqliteStorage((data_dir or data_dir_from(os.environ)) / DATABASE_FILE, sqlite)


async def open_storage(
    database_url: str | None,
    data_dir: Path | None = None,
    *,
    postgres: PostgresOptions | None = None,
    sqlite: SqliteOptions | None = None,
    retention: Retention | None = None,
) -> Storage:
    """Choose, open and migrate the storage; the caller must ``await storage.close()``.

    Raises ``StorageUnavailable`` when the database cannot be reached and
    ``StorageConfigError`` when it can never work as configured.
    """
    storage = create_storage(
        database_url, data_dir, postgres=postgres, sqlite=sqlite, retention=retention
    )
    await storage.open()
    return storage


@contextlib.asynccontextmanager
async def storage_from_url(
    database_url: str | None,
    data_dir: Path | None = None,
    *,
    postgres: PostgresOptions | None = None,
    sqlite: SqliteOptions | None = None,
    retention: Retention | None = None,
) -> AsyncIterator[Storage]:
    """:func:`open_storage` as an async context manager that closes on exit."""
    storage = await open_storage(
        database_url, data_dir, postgres=postgres, sqlite=sqlite, retention=retention
    )
    try:
        yield storage
    finally:
        await storage.close()
