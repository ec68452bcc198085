"""Hubs as fixtures (the hub and its helpers are in tests/support/hub.py).

Every test using a hub also asserts that nothing was logged at ERROR (an exception
escaping a door, a task exception never retrieved, ...).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import (
    RunningHub,
    running_hub,
)


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield caplog
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, "errors were logged: " + "\n".join(
        f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in errors
    )


@pytest.fixture
async def sqlite_hub(tmp_path: Path, no_errors_logged: Any) -> AsyncIterator[RunningHub]:
    async with running_hub(None, tmp_path / "data") as running:
        yield running


@pytest.fixture
async def pg_hub(
    tmp_path: Path, postgres_url: str, no_errors_logged: Any
) -> AsyncIterator[RunningHub]:
    async with running_hub(postgres_url, tmp_path / "data") as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (embedded SQLite), then the run's PostgreSQL database."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


@pytest.fixture
async def any_hub(
    database_url: str | None, tmp_path: Path, no_errors_logged: Any
) -> AsyncIterator[RunningHub]:
    """The same test on both backends."""
    async with running_hub(database_url, tmp_path / "data") as running:
        yield running
