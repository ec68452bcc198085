"""Hubs in a cluster: a private Redis per test, three real hubs sharing the run's database.

The hubs run in this process's event loop (tests/support/hub.py), each with its
own link to Redis and its own hub id; tests that kill a hub run them as
processes (tests/hub/cluster/test_cluster_processes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from hub.cluster.settings import ClusterSettings
from tests.support.hub import RunningHub, running_hub
from tests.support.polling import until
from tests.support.redis import RedisServer, redis_server


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def cluster_settings(redis: RedisServer, name: str, **overrides: Any) -> ClusterSettings:
    settings = ClusterSettings.from_url(redis.url, hub_id=name)
    return ClusterSettings(**{**_fields(settings), **overrides})


def _fields(settings: ClusterSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


@contextlib.asynccontextmanager
async def cluster_of(
    postgres_url: str, redis: RedisServer, tmp_path: Path, count: int = 3, **overrides: Any
) -> AsyncIterator[list[RunningHub]]:
    async with contextlib.AsyncExitStack() as stack:
        hubs = [
            await stack.enter_async_context(
                running_hub(
                    postgres_url,
                    tmp_path / f"hub{i}",
                    cluster=cluster_settings(redis, f"hub{i}", **overrides),
                )
            )
            for i in range(count)
        ]
        yield hubs


@pytest.fixture
async def hubs(
    postgres_url: str, redis: RedisServer, tmp_path: Path, no_errors_logged: Any
) -> AsyncIterator[list[RunningHub]]:
    async with cluster_of(postgres_url, redis, tmp_path) as running:
        yield running


async def token_everywhere(hubs: list[RunningHub], device_id: str) -> str:
    """A token added at the first hub, once every hub's token book holds it."""
    from hub.auth import hash_token

    token = await hubs[0].add_token(device_id)
    for running in hubs[1:]:
        await until(lambda r=running: r.hub.knows_token(device_id, hash_token(token)))
    return token


async def close_code(client: Any, within: float) -> int | None:
    """The close code the hub sent; None when still open after ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while True:
                await client.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else -1
    except TimeoutError:
        return None
