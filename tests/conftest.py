"""Fixtures every part of the suite shares: a real PostgreSQL database per run, a real
TimescaleDB server per run (tests/support/timescaledb.py), a private MQTT broker per test
(tests/support/mqtt.py), and no skips."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# The shared helpers assert too: their failures read as the tests' own do. Before
# anything imports them.
pytest.register_assert_rewrite("tests.support")

from hub.storage.migrate import TIMESCALE_PRELOADED_SQL  # noqa: E402
from tests.support.mqtt import Mosquitto  # noqa: E402
from tests.support.timescaledb import TimescaleUnavailable, timescaledb_server  # noqa: E402

POSTGRES_ADMIN_DSN = os.environ.get(
    "EMS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CHECKOUT = Path(__file__).resolve().parent.parent


def with_database(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead of its own (its query kept)."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def _admin_fetchval(sql: str, dsn: str = POSTGRES_ADMIN_DSN) -> object:
    import asyncio

    import asyncpg

    async def run() -> object:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def _admin_execute(sql: str, dsn: str = POSTGRES_ADMIN_DSN) -> None:
    _admin_fetchval(sql, dsn)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the machine's PostgreSQL, dropped after the run."""
    name = f"ems_test_{secrets.token_hex(4)}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(POSTGRES_ADMIN_DSN, name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def timescaledb_admin_url() -> Iterator[str]:
    """The admin URL of a server that preloads TimescaleDB, for the whole run.

    ``EMS_TEST_TIMESCALEDB_URL``, else a throw-away cluster started and stopped here
    (tests/support/timescaledb.py). Neither: every test that needs it fails, saying why.
    """
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(timescaledb_server(CHECKOUT, os.environ))
        except TimescaleUnavailable as err:
            reason = str(err)  # failed below, outside the handler: no chained traceback
        else:
            if _admin_fetchval(TIMESCALE_PRELOADED_SQL, url) is not True:
                pytest.fail(f"{url} does not preload TimescaleDB", pytrace=False)
            yield url
            return
    pytest.fail(reason, pytrace=False)


@pytest.fixture
def timescaledb_url(timescaledb_admin_url: str) -> Iterator[str]:
    """A new, empty database on the TimescaleDB server, dropped after the test."""
    name = f"ems_test_{secrets.token_hex(4)}"
    _admin_execute(f'CREATE DATABASE "{name}"', timescaledb_admin_url)
    try:
        yield with_database(timescaledb_admin_url, name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timescaledb_admin_url)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto per test: the test may kill and restart it."""
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.kill()


_OWN_BASETEMP = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Each run its own temporary root, unless ``--basetemp`` names one.

    pytest numbers its runs' roots (``/tmp/pytest-of-USER/pytest-N``) and deletes all
    but the last three at start: two runs at once on one machine (a contributor's
    and CI's, or several checkouts) would delete each other's files mid-test.
    """
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="ems-pytest-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)


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
