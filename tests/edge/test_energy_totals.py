"""edge/energy_totals.py on plain values, and the totals in the outbox on real SQLite files."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.energy import EnergyTracker
from edge.energy_totals import EnergyTotals
from edge.outbox import NewReading, Outbox, OutboxError, ts_us_of
from telemetry.energy_increments import EnergySettings

T0_US = ts_us_of(datetime(2026, 12, 1, 10, tzinfo=UTC))
# 3.6 kW from the grid into the house: 1 Wh of import and of house per second.
SITE = {"grid": {"power_w": 3600.0}}


def test_increments_add_up_per_quantity_and_other_keys_are_left_out() -> None:
    totals = EnergyTotals().added(
        {"span_s": 1.0, "complete": True, "import_wh": 1.5, "house_wh": 1.25, "since_us": 7}
    )
    totals = totals.added({"span_s": 2.0, "complete": False, "import_wh": 0.5, "pv_wh": 0.0})
    assert dict(totals.wh) == {"import_wh": 2.0, "house_wh": 1.25, "pv_wh": 0.0}


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, True, "3", None])
def test_what_is_not_energy_is_never_added(bad: object) -> None:
    totals = EnergyTotals().added({"export_wh": 2.0}).added({"export_wh": bad})
    assert dict(totals.wh) == {"export_wh": 2.0}


def test_json_round_trip_and_bad_json_named() -> None:
    totals = EnergyTotals().added({"pv_wh": 12.5, "charge_wh": 3.0})
    assert EnergyTotals.from_json(totals.to_json()) == totals
    assert json.loads(totals.to_json()) == {"pv_wh": 12.5, "charge_wh": 3.0}
    for text, reason in (
        ("{", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"solar_wh": 1}', "unknown quantities: solar_wh"),
        ('{"pv_wh": -2}', "pv_wh is -2, not a number >= 0"),
    ):
        with pytest.raises(ValueError, match=reason):
            EnergyTotals.from_json(text)


async def _take(outbox: Outbox, tracker: EnergyTracker, second: int) -> None:
    """One reading through the tracker into the outbox, as the sampler and writer do it."""
    energy, state = tracker.measure(100.0 + second, T0_US + second * 10**6, SITE)
    body = {**SITE, "energy": energy} if energy is not None else SITE
    await outbox.append(
        [
            NewReading(
                mono=100.0 + second,
                body=json.dumps(body),
                ts_us=T0_US + second * 10**6,
                energy_state=state,
                energy_totals=tracker.totals if energy is not None else None,
            )
        ],
        boot=tracker.boot,
    )


async def test_totals_are_committed_with_their_reading_and_go_on_after_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "buffer.db"
    async with Outbox.open(path, max_bytes=2**24) as outbox:
        assert outbox.committed_totals is None
        tracker = EnergyTracker(EnergySettings(), boot="b1", totals=outbox.committed_totals)
        for second in range(5):
            await _take(outbox, tracker, second)
            committed = outbox.committed_totals
            expected = float(second)  # the first reading has nothing before it
            if second == 0:
                assert committed is None
            else:
                assert committed is not None
                assert committed.wh["import_wh"] == pytest.approx(expected)
                assert committed.wh["house_wh"] == pytest.approx(expected)
        # A reading without energy keeps the totals stored before it.
        await outbox.append([NewReading(mono=200.0, body=json.dumps(SITE), ts_us=T0_US)], boot="b1")
        assert outbox.committed_totals is not None
        assert outbox.committed_totals.wh["import_wh"] == pytest.approx(4.0)
    # The agent starts again 3 s later in the same boot: the totals go on, not from 0.
    async with Outbox.open(path, max_bytes=2**24) as outbox:
        stored = outbox.committed_totals
        assert stored is not None
        assert stored.wh["import_wh"] == pytest.approx(4.0)
        tracker = EnergyTracker(
            EnergySettings(), boot="b1", record=await outbox.energy_record(), totals=stored
        )
        await _take(outbox, tracker, 7)
        assert outbox.committed_totals is not None
        assert outbox.committed_totals.wh["import_wh"] == pytest.approx(7.0)


async def test_a_failed_transaction_commits_no_totals(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    async with Outbox.open(path, max_bytes=2**24) as outbox:
        tracker = EnergyTracker(EnergySettings(), boot="b1")
        for second in range(3):
            await _take(outbox, tracker, second)
        before = outbox.committed_totals
        assert before is not None
        # Another process holds the write lock: the next append fails whole (after
        # the outbox's busy timeout, 5 s), and its totals are not taken as committed.
        holder = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(OutboxError, match="locked"):
                await _take(outbox, tracker, 3)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert outbox.committed_totals == before
        assert tracker.totals.wh["import_wh"] > before.wh["import_wh"]


async def test_unusable_stored_totals_start_afresh_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "buffer.db"
    async with Outbox.open(path, max_bytes=2**24):
        pass
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO energy_totals (id, seq, totals) VALUES (1, 0, '{\"pv_wh\": -1}')")
    db.close()
    async with Outbox.open(path, max_bytes=2**24) as outbox:
        assert outbox.committed_totals is None
    assert "stored energy totals not usable, starting afresh" in caplog.text
