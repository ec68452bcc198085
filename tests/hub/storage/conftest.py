"""Fixtures of the storage suite: every behaviour test runs on each backend.

PostgreSQL tests get a fresh schema of the run's database each (a search_path
in the URL), so migrations always start from nothing; SQLite tests get a file
under ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.base import Storage
from tests.hub.storage.helpers import BACKENDS, fresh_schema, make_storage, opened


@pytest.fixture
async def schema_url(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres_url) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The run's PostgreSQL database, asked for only by PostgreSQL backends (sync: it uses
    asyncio.run, which cannot run inside the test's loop)."""
    if backend == "sqlite":
        return ""
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def storage_factory(
    backend: str, backend_database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[str, Path]]:
    """(url, data_dir) for the backend: a fresh schema for PostgreSQL, a tmp dir for SQLite."""
    if backend == "sqlite":
        yield "", tmp_path
        return
    async with fresh_schema(backend_database_url) as url:
        yield url, tmp_path


@pytest.fixture
async def storage(backend: str, storage_factory: tuple[str, Path]) -> AsyncIterator[Storage]:
    url, data_dir = storage_factory
    async with opened(make_storage(backend, url=url, data_dir=data_dir)) as opened_storage:
        yield opened_storage
