"""A database made for one benchmark run, and the hub's storage opened on it.

bench/timescale_compression.py and bench/late_backlog.py both create a database
on the server named by ``--database`` (an admin URL), store readings in it
through ``PostgresStorage`` with TimescaleDB required (the writer's own path,
so what lands in the table is what a hub stores), and drop it afterwards,
whatever happened in between.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg

from hub.storage.postgres import PostgresOptions, PostgresStorage
from hub.storage.schema import TimescaleMode, TimescaleOptions


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    """The URL of a new, empty database on ``admin_url``'s server; dropped on exit."""
    name = f"ems_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def timescale_storage(url: str) -> AsyncIterator[PostgresStorage]:
    """``PostgresStorage`` open on ``url`` with TimescaleDB required; closed on exit."""
    storage = PostgresStorage(
        url, PostgresOptions(timescale=TimescaleOptions(mode=TimescaleMode.REQUIRED))
    )
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()
