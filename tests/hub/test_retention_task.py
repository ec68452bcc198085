"""The hub's retention task and its settings (hub/runtime.py, hub/cli.py retention_of)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.cli import Exit, Failed, retention_of
from hub.runtime import Hub, HubSettings
from hub.storage.retention import DEFAULT_READINGS, DEFAULT_ROLLUPS, Retention
from hub.storage.sqlite import SqliteStorage
from tests.hub.storage.helpers import opened, simple


def _args(**flags: str | None) -> argparse.Namespace:
    return argparse.Namespace(
        retain_readings=flags.get("readings"), retain_rollups=flags.get("rollups")
    )


def test_flags_win_over_variables_and_defaults_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EMS_RETAIN_READINGS", raising=False)
    monkeypatch.delenv("EMS_RETAIN_ROLLUPS", raising=False)
    assert retention_of(_args()) == Retention(DEFAULT_READINGS, DEFAULT_ROLLUPS)
    monkeypatch.setenv("EMS_RETAIN_READINGS", "90d")
    assert retention_of(_args()) == Retention(timedelta(days=90), DEFAULT_ROLLUPS)
    assert retention_of(_args(readings="2y", rollups="20y")) == Retention(
        timedelta(days=730), timedelta(days=7300)
    )
    # Readings kept for ever keep the rollups for ever too, unless told otherwise.
    assert retention_of(_args(readings="off")) == Retention(None, None)
    with pytest.raises(Failed, match="--retain-rollups") as refused:
        retention_of(_args(readings="off", rollups="10y"))
    assert refused.value.code is Exit.USAGE
    monkeypatch.setenv("EMS_RETAIN_ROLLUPS", "30d")
    with pytest.raises(Failed, match="--retain-rollups: must be at least"):
        retention_of(_args())
    with pytest.raises(Failed, match="--retain-readings: 'soon'"):
        retention_of(_args(readings="soon"))


async def test_the_hub_deletes_readings_past_retention_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old = [simple("site", now - timedelta(days=40, seconds=s)) for s in range(30)]
    recent = [simple("site", now - timedelta(days=3, seconds=s)) for s in range(5)]
    storage = SqliteStorage(tmp_path / "hub.db")
    async with opened(SqliteStorage(tmp_path / "hub.db")) as other:
        await other.write_readings(old + recent)
        settings = HubSettings(
            data_dir=tmp_path,
            retention=Retention(readings=timedelta(days=30), rollups=None),
            retention_first_s=0.0,
        )
        async with Hub(settings, storage=storage):
            span = (now - timedelta(days=60), now)
            async with asyncio.timeout(30):
                while len(await other.readings("site", *span, limit=100)) != len(recent):  # noqa: ASYNC110 - the hub task deletes
                    await asyncio.sleep(0.05)
        kept = await other.readings("site", *span, limit=100)
        assert kept == sorted(
            (r.reading.to_wire() for r in recent), key=lambda wire: str(wire["ts"])
        )
