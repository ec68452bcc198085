"""The hub's token refresher on real storage: a full load only when the tokens changed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from hub.auth import BadToken, LookupBudget, hash_token, new_token
from hub.runtime import Hub, HubSettings
from hub.storage import create_storage
from hub.storage.base import Storage, StorageUnavailable, TokenRecord
from hub.storage.postgres import PostgresStorage
from hub.storage.sqlite import SqliteStorage
from tests.hub.storage.helpers import fresh_schema, opened
from tests.support.hub import RunningHub, device_id, reading, recv_ack_seqs, running_hub
from tests.support.polling import until

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
    await until(lambda: storage.polls >= target)


async def test_the_token_list_is_loaded_only_when_it_changed(
    counting: tuple[CountingSqlite | CountingPostgres, Storage], tmp_path: Path
) -> None:
    storage, other = counting
    settings = HubSettings(data_dir=tmp_path, token_refresh_s=0.02)
    async with Hub(settings, storage=storage) as hub:
        await ticks(storage)
        assert storage.loads == 1  # at start only

        await other.add_token(TokenRecord("dev-1", "h1", NOW))
        await until(lambda: hub.knows_token("dev-1", "h1"))
        await ticks(storage)
        assert storage.loads == 2

        assert await other.revoke_tokens("nobody") == 0
        await ticks(storage)
        assert storage.loads == 2

        assert await other.revoke_tokens("dev-1") == 1
        await until(lambda: not hub.knows_token("dev-1", "h1"))
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
        await until(lambda: storage.loads == 2)  # the database may not be the same one
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
    await until(lambda: device.close_code is not None)
    assert device.close_code == 1008
    assert any_hub.hub.metrics.doors.revoked_closed == 1


async def test_a_token_added_by_another_process_is_accepted_at_once(
    database_url: str | None, tmp_path: Path, no_errors_logged: object
) -> None:
    """The README's order: `ems hub token add`, then the agent connects right away.

    The refresher is slowed to an hour here, so only the look-up on a miss can
    accept the token.
    """
    data = tmp_path / "data"
    async with running_hub(database_url, data, token_refresh_s=3600.0) as running:
        for attempt in range(3):
            me = f"ems_new_{attempt}"
            env = {**os.environ, "EMS_DATA_DIR": str(data)}
            env.pop("EMS_DATABASE_URL", None)
            database = ["--database", database_url] if database_url else []
            added = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "ems", "hub", "token", "add", me, *database],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            token = added.stdout.strip().splitlines()[-1]
            device = await running.device(me, token)  # refused: InvalidStatus (403)
            await device.send(json.dumps(reading(attempt + 1)))
            await recv_ack_seqs(device, {attempt + 1})


async def test_a_token_refused_before_it_was_added_is_accepted_after(
    any_hub: RunningHub, database_url: str | None, tmp_path: Path
) -> None:
    me = device_id()
    token = new_token()
    with pytest.raises(InvalidStatus):
        await any_hub.device(me, token)
    with pytest.raises(InvalidStatus):
        await any_hub.device(me, token)  # remembered as refused: no look-up this time
    # (Only a test can offer a token before it exists: they are random.) Remembered
    # as refused until the book's generation moves, which the refresher sees.
    await any_hub.storage.add_token(TokenRecord(me, hash_token(token), datetime.now(UTC)))
    await until(lambda: any_hub.hub.knows_token(me, hash_token(token)), within=5.0)
    device = await any_hub.device(me, token)
    await device.send(json.dumps(reading(1)))
    await recv_ack_seqs(device, {1})


async def test_a_scan_of_random_tokens_hits_storage_a_bounded_number_of_times(
    counting: tuple[CountingSqlite | CountingPostgres, Storage], tmp_path: Path
) -> None:
    storage, other = counting
    budget = LookupBudget()
    settings = HubSettings(data_dir=tmp_path, token_refresh_s=3600.0)
    async with Hub(settings, storage=storage) as hub:
        mine = new_token()
        await other.add_token(TokenRecord("ems_001", hash_token(mine), NOW))
        assert await hub.verify_device_token("ems_001", mine) == hash_token(mine)
        polls, loads = storage.polls, storage.loads
        started = time.monotonic()
        refused = 0
        for batch in range(20):  # 1000 handshakes, 50 at a time
            results = await asyncio.gather(
                *(hub.verify_device_token(f"ems_{batch:03}", new_token()) for _ in range(50)),
                return_exceptions=True,
            )
            refused += sum(isinstance(r, BadToken) for r in results)
        elapsed = time.monotonic() - started
        assert refused == 1000
        lookups = storage.polls - polls
        assert lookups <= budget.burst + budget.per_s * elapsed + 1, (lookups, elapsed)
        assert lookups < 100
        assert storage.loads == loads  # nothing changed: the list itself is never re-read
        # The same bad token again and again: one look-up, then remembered.
        bad = new_token()
        polls = storage.polls
        for _ in range(100):
            with pytest.raises(BadToken):
                await hub.verify_device_token("ems_001", bad)
        assert storage.polls - polls <= 1
        # The real token still works, and one added now is accepted at once.
        assert await hub.verify_device_token("ems_001", mine) == hash_token(mine)
        await asyncio.sleep(1.0 / budget.per_s)  # the scan spent the budget: one look-up's worth
        fresh = new_token()
        await other.add_token(TokenRecord("ems_002", hash_token(fresh), NOW))
        assert await hub.verify_device_token("ems_002", fresh) == hash_token(fresh)


async def test_with_storage_down_an_unknown_token_is_refused_not_held(
    counting: tuple[CountingSqlite | CountingPostgres, Storage], tmp_path: Path
) -> None:
    storage, other = counting
    settings = HubSettings(data_dir=tmp_path, token_refresh_s=3600.0)
    async with Hub(settings, storage=storage) as hub:
        known = new_token()
        await other.add_token(TokenRecord("ems_001", hash_token(known), NOW))
        assert await hub.verify_device_token("ems_001", known) == hash_token(known)
        storage.down = True
        started = time.monotonic()
        with pytest.raises(BadToken):
            await hub.verify_device_token("ems_001", new_token())
        assert time.monotonic() - started < 2.5
        # What the book holds still works without storage.
        assert await hub.verify_device_token("ems_001", known) == hash_token(known)
        storage.down = False
