"""Choosing the backend from the database URL (docs/configuration.md, "Storage")."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.storage import create_storage, open_storage, storage_from_url
from hub.storage.base import StorageConfigError
from hub.storage.postgres import PostgresStorage
from hub.storage.sqlite import SqliteStorage
from tests.hub.storage.helpers import fresh_schema


async def test_no_url_means_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    async with storage_from_url(None, tmp_path / "data") as storage:
        assert isinstance(storage, SqliteStorage)
        await storage.check()
    assert (tmp_path / "data" / "hub.db").is_file()


async def test_the_default_data_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMS_DATA_DIR", str(tmp_path / "from-env"))
    storage = await open_storage(None)
    await storage.close()
    assert (tmp_path / "from-env" / "hub.db").is_file()
    monkeypatch.delenv("EMS_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    storage = create_storage("")
    assert isinstance(storage, SqliteStorage)
    assert storage.path == Path("ems-data") / "hub.db"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "POSTGRESQL"])
def test_postgres_urls_choose_postgres(scheme: str) -> None:
    assert isinstance(create_storage(f"{scheme}://u@localhost/db"), PostgresStorage)


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "sqlite:///tmp/x.db", "postgresql+asyncpg://u@h/db", "localhost:5432"]
)
def test_other_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(StorageConfigError, match="unsupported database URL scheme"):
        create_storage(url)


async def test_open_storage_opens_postgres(postgres_url: str) -> None:
    async with fresh_schema(postgres_url) as url, storage_from_url(url) as storage:
        assert isinstance(storage, PostgresStorage)
        await storage.check()
