"""Backups as docs/operations.md ("Backups and restore") has the operator take them: of a
hub's storage while the hub runs and a device streams into it, restored into a new
storage that a new hub serves; every reading acked before the backup began is there, the
device's token too.

SQLite: the online backup API, by the sqlite3 command (``.backup``) and by Python's
``sqlite3.Connection.backup``. PostgreSQL: ``pg_dump -Fc`` and ``pg_restore``; on
TimescaleDB with ``timescaledb_pre_restore()`` and ``timescaledb_post_restore()`` around
the restore, as TimescaleDB documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import POSTGRES_ADMIN_DSN, with_database
from tests.edge.hubproc import HubProcess
from tests.support.hub import BASE_TS, reading, recv_ack_seqs

pytestmark = pytest.mark.slow

DEVICE = "backed_up"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stream:
    """A device sending readings 0, 1, 2... ten at a time, each ten once acked."""

    device: ClientConnection
    acked: set[int] = field(default_factory=set)

    async def run(self) -> None:
        seq = 0
        while True:
            batch = set(range(seq, seq + 10))
            for n in sorted(batch):
                await self.device.send(json.dumps(reading(n)))
            self.acked |= await recv_ack_seqs(self.device, batch)
            seq += 10


@contextlib.asynccontextmanager
async def streaming(hub: HubProcess, token: str) -> AsyncIterator[Stream]:
    async with connect(
        f"{hub.url}/ws/device/{DEVICE}", additional_headers={"Authorization": f"Bearer {token}"}
    ) as device:
        stream = Stream(device)
        task = asyncio.create_task(stream.run(), name="test.stream")
        try:
            # The backup is taken mid-stream: readings before, during and after it.
            async with asyncio.timeout(90):
                while len(stream.acked) < 200:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            yield stream
            assert not task.done(), task
            before = len(stream.acked)
            async with asyncio.timeout(90):
                while len(stream.acked) < before + 100:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def stored_seqs(hub: HubProcess) -> list[int]:
    rows = hub.readings(
        DEVICE, start=BASE_TS - timedelta(minutes=1), end=datetime.now(UTC) + timedelta(hours=1)
    )
    return [int(row["seq"]) for row in rows]


async def backed_up_and_restored(
    source: HubProcess, target: HubProcess, backup: Callable[[], None], restore: Callable[[], None]
) -> None:
    """Stream into ``source``, back it up mid-stream, restore, and check ``target``."""
    source.start()
    try:
        token = await asyncio.to_thread(source.token_add, DEVICE)
        async with streaming(source, token) as stream:
            acked_before = set(stream.acked)
            await asyncio.to_thread(backup)
            acked_after = set(stream.acked)
        sent = max(stream.acked) + 1
    finally:
        assert source.stop() == 0, source.log()
    await asyncio.to_thread(restore)
    target.start()
    try:
        restored = await asyncio.to_thread(stored_seqs, target)
        # Everything acked before the backup began, each once, and nothing never sent.
        assert acked_before <= set(restored), sorted(acked_before - set(restored))[:10]
        assert len(set(restored)) == len(restored)
        assert set(restored) <= set(range(sent))
        # A consistent snapshot: a prefix of the stream (the hub stores a device's
        # readings in order), taken between the backup's start and its end.
        assert restored == list(range(len(restored)))
        assert len(restored) <= len(acked_after) + 10
        # The device's token came along: it streams into the restored hub at once.
        async with connect(
            f"{target.url}/ws/device/{DEVICE}",
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as device:
            await device.send(json.dumps(reading(sent)))
            assert await recv_ack_seqs(device, {sent}) == {sent}
    finally:
        assert target.stop() == 0, target.log()


def _sqlite3_command(source: Path, backup: Path) -> None:
    assert shutil.which("sqlite3"), "the sqlite3 command is missing: run scripts/setup.sh"
    subprocess.run(["sqlite3", str(source), f".backup '{backup}'"], check=True, timeout=120)


def _python_backup_api(source: Path, backup: Path) -> None:
    # docs/operations.md's one-liner, as written there.
    code = (
        "import sqlite3, sys; d = sqlite3.connect(sys.argv[2]); "
        "sqlite3.connect(sys.argv[1]).backup(d); d.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(source), str(backup)], check=True, timeout=120)
    assert code in (REPO / "docs/operations.md").read_text()


@pytest.mark.parametrize("how", [_sqlite3_command, _python_backup_api], ids=["sqlite3", "python"])
async def test_sqlite_online_backup_and_restore(
    tmp_path: Path, how: Callable[[Path, Path], None]
) -> None:
    source = HubProcess(tmp_path / "source")
    target = HubProcess(tmp_path / "target")
    backup = tmp_path / "backups/hub.db"
    backup.parent.mkdir()

    def take() -> None:
        how(source.data_dir / "hub.db", backup)
        checked = sqlite3.connect(backup).execute("PRAGMA integrity_check").fetchone()
        assert checked == ("ok",)

    def restore() -> None:
        # A new hub's folder: only hub.db (a restored file has no -wal or -shm of its own).
        target.data_dir.mkdir()
        shutil.copyfile(backup, target.data_dir / "hub.db")

    await backed_up_and_restored(source, target, take, restore)


async def _admin(sql: str, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def two_databases(admin_url: str) -> AsyncIterator[tuple[str, str]]:
    names = [f"ems_backup_{secrets.token_hex(4)}_{role}" for role in ("source", "target")]
    for name in names:
        await _admin(f'CREATE DATABASE "{name}"', admin_url)
    try:
        yield with_database(admin_url, names[0]), with_database(admin_url, names[1])
    finally:
        for name in names:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_url)


def _pg(*command: str) -> None:
    done = subprocess.run(list(command), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    # pg_restore --exit-on-error stops at the first error; an error line is a finding too.
    assert "error" not in done.stderr.lower(), done.stderr


def _psql(url: str, sql: str) -> None:
    _pg("psql", "--no-psqlrc", "--set=ON_ERROR_STOP=1", "--quiet", f"--dbname={url}", "-c", sql)


async def test_postgresql_dump_and_restore(tmp_path: Path) -> None:
    """pg_dump while the hub writes; pg_restore into a new database."""
    await _dump_and_restore(tmp_path, POSTGRES_ADMIN_DSN, timescale=False)


async def test_timescaledb_dump_and_restore(tmp_path: Path, timescaledb_admin_url: str) -> None:
    """The same with TimescaleDB's own steps around pg_restore (docs/operations.md)."""
    await _dump_and_restore(tmp_path, timescaledb_admin_url, timescale=True)


async def _dump_and_restore(tmp_path: Path, admin_url: str, *, timescale: bool) -> None:
    dump = tmp_path / "ems.dump"
    async with two_databases(admin_url) as (source_url, target_url):
        source = HubProcess(tmp_path / "source", database=source_url)
        target = HubProcess(tmp_path / "target", database=target_url)

        def take() -> None:
            assert shutil.which("pg_dump"), "pg_dump is missing: run scripts/setup.sh"
            _pg("pg_dump", "--format=custom", f"--file={dump}", f"--dbname={source_url}")

        def restore() -> None:
            if timescale:
                _psql(target_url, "CREATE EXTENSION timescaledb")
                _psql(target_url, "SELECT timescaledb_pre_restore()")
            _pg("pg_restore", "--exit-on-error", "--no-owner", f"--dbname={target_url}", str(dump))
            if timescale:
                _psql(target_url, "SELECT timescaledb_post_restore()")

        await backed_up_and_restored(source, target, take, restore)
        if timescale:
            # The restored database is TimescaleDB again, its readings a hypertable.
            conn = await asyncpg.connect(target_url)
            try:
                names = await conn.fetch(
                    "SELECT hypertable_name FROM timescaledb_information.hypertables"
                )
            finally:
                await conn.close()
            assert "readings" in {row["hypertable_name"] for row in names}, names
