"""The hub's token refresher on real storage: a full load only when the tokens changed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.runtime import Hub, HubSettings
from hub.storage import create_storage
from hub.storage.base import Storage, StorageUnavailable, TokenRecord
from hub.storage.postgres import PostgresStorage
from hub.storage.sqlite import SqliteStorage
from tests.hub.conftest import RunningHub, device_id, reading, recv_ack_seqs, wait_for
from tests.hub.storage.helpers import fresh_schema, opened

NOW = datetime.now(UTC)


class _Counting:
    """Counts of the refresher's calls, and an outage to switch on."""

    loads = 0  # tokens(): full loads
    polls = 0  # token_generation()
    down = False

    def _poll(self) -> None:
        self.polls += 1
        if self.down:
            raise StorageUnavailable("reading the token generation: switched off by the test")


class CountingSqlite(_Counting, SqliteStorage):
    async def tokens(self) -> list[TokenRecord]:
        self.loads += 1
        return await super().tokens()

    async def token_generation(self) -> int:
        self._poll()
        return await super().token_generation()


class CountingPostgres(_Counting, PostgresStorage):
    async def tokens(self) -> list[TokenRecord]:
        self.loads += 1
        return await super().tokens()

    async def token_generation(self) -> int:
        self._poll()
        return await super().token_generation()


@pytest.fixture
async def counting(
    database_url: str | None, tmp_path: Path
) -> AsyncIterator[tuple[CountingSqlite | CountingPostgres, Storage]]:
    """(the hub's storage, counting; another storage on the same database, as `ems hub token`)."""
    if database_url is None:
        path = tmp_path / "hub.db"
        async with opened(SqliteStorage(path)) as other:
            yield CountingSqlite(path), other
        return
    async with fresh_schema(database_url) as url, opened(PostgresStorage(url)) as other:
        yield CountingPostgres(url), other


async def ticks(storage: _Counting, n: int = 10) -> None:
    """Wait for ``n`` more refresher ticks."""
    target = storage.polls + n
    await wait_for(lambda: storage.polls >= target)


async def test_the_token_list_is_loaded_only_when_it_changed(
    counting: tuple[CountingSqlite | CountingPostgres, Storage], tmp_path: Path
) -> None:
    storage, other = counting
    settings = HubSettings(data_dir=tmp_path, token_refresh_s=0.02)
    async with Hub(settings, storage=storage) as hub:
        await ticks(storage)
        assert storage.loads == 1  # at start only

        await other.add_token(TokenRecord("dev-1", "h1", NOW))
        await wait_for(lambda: hub.tokens.holds("dev-1", "h1"))
        await ticks(storage)
        assert storage.loads == 2

        assert await other.revoke_tokens("nobody") == 0
        await ticks(storage)
        assert storage.loads == 2

        assert await other.revoke_tokens("dev-1") == 1
        await wait_for(lambda: not hub.tokens.holds("dev-1", "h1"))
        await ticks(storage)
        assert storage.loads == 3


async def test_after_an_outage_the_token_list_is_loaded_again(
    counting: tuple[CountingSqlite | CountingPostgres, Storage], tmp_path: Path
) -> None:
    storage, _ = counting
    settings = HubSettings(data_dir=tmp_path, token_refresh_s=0.02)
    async with Hub(settings, storage=storage):
        await ticks(storage)
        assert storage.loads == 1
        storage.down = True
        await ticks(storage, 3)
        storage.down = False
        await wait_for(lambda: storage.loads == 2)  # the database may not be the same one
        await ticks(storage)
        assert storage.loads == 2


async def test_a_revocation_by_another_connection_closes_the_live_socket(
    any_hub: RunningHub, database_url: str | None, tmp_path: Path
) -> None:
    me = device_id()
    token = await any_hub.add_token(me)
    device = await any_hub.device(me, token)
    await device.send(json.dumps(reading(1)))
    await recv_ack_seqs(device, {1})
    async with opened(create_storage(database_url, tmp_path / "data")) as other:
        assert await other.revoke_tokens(me) == 1
    await wait_for(lambda: device.close_code is not None)
    assert device.close_code == 1008
    assert any_hub.hub.counters.revoked_closed == 1
