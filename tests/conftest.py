"""Fixtures every part of the suite shares: a real PostgreSQL database per run, and no skips."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

POSTGRES_ADMIN_DSN = os.environ.get(
    "EMS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin_execute(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the machine's PostgreSQL, dropped after the run."""
    name = f"ems_test_{secrets.token_hex(4)}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With EMS_NO_SKIP=1 (the test command sets it), a skipped test fails the run."""
    if os.environ.get("EMS_NO_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped and exitstatus == 0:
        reporter.write_line(
            f"EMS_NO_SKIP=1: {len(skipped)} test(s) were skipped; every test must run here",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
