"""Fixtures of the storage suite: every behaviour test runs on each backend.

PostgreSQL tests get a fresh schema of the run's database each (a search_path
in the URL), so migrations always start from nothing; TimescaleDB tests a new
database each on the run's TimescaleDB server (the extension is per database);
SQLite tests get a file under ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.base import Storage
from tests.hub.storage.helpers import (
    BACKENDS,
    TIMESCALE_BACKEND,
    fresh_schema,
    make_storage,
    opened,
)


@pytest.fixture
async def schema_url(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres_url) as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param(name, marks=pytest.mark.timescaledb) if name == TIMESCALE_BACKEND else name
        for name in BACKENDS
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The run's PostgreSQL database, or a new TimescaleDB one, asked for only by those
    backends (sync: it uses asyncio.run, which cannot run inside the test's loop)."""
    if backend == "sqlite":
        return ""
    if backend == TIMESCALE_BACKEND:
        return str(request.getfixturevalue("timescaledb_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def storage_factory(
    backend: str, backend_database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[str, Path]]:
    """(url, data_dir) for the backend: a fresh schema for PostgreSQL, a new database for
    TimescaleDB, a tmp dir for SQLite."""
    if backend == "sqlite":
        yield "", tmp_path
        return
    if backend == TIMESCALE_BACKEND:
        yield backend_database_url, tmp_path
        return
    async with fresh_schema(backend_database_url) as url:
        yield url, tmp_path


@pytest.fixture
async def storage(backend: str, storage_factory: tuple[str, Path]) -> AsyncIterator[Storage]:
    url, data_dir = storage_factory
    async with opened(make_storage(backend, url=url, data_dir=data_dir)) as opened_storage:
        yield opened_storage
