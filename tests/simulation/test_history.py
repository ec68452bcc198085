"""simulation/history.py: a past day of the simulated site, as its agent would have sent it."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from simulation.history import simulated_day
from telemetry import Reading

DAY = datetime(2026, 12, 3, tzinfo=ZoneInfo("Europe/Berlin"))


@pytest.fixture(scope="module")
def day() -> list[dict[str, object]]:
    return simulated_day(DAY, step_s=60.0)


def ts(reading: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(reading["ts"]))


def test_the_readings_cover_the_day_one_step_apart(day: list[dict[str, object]]) -> None:
    assert len(day) == 24 * 60 + 1
    assert ts(day[0]) == DAY - timedelta(minutes=1)  # the day's first minute measured whole
    assert ts(day[-1]) == DAY + timedelta(hours=24, minutes=-1)
    assert all(ts(b) - ts(a) == timedelta(minutes=1) for a, b in itertools.pairwise(day))
    assert [r["seq"] for r in day] == list(range(len(day)))
    # Each one a valid reading of the wire protocol, its energy included.
    now = datetime.now(UTC)
    for raw in day:
        reading = Reading.model_validate(raw, context={"now": now})
        assert reading.ts == ts(raw)


def test_every_minute_is_measured_and_the_energy_adds_up(day: list[dict[str, object]]) -> None:
    assert "energy" not in day[0]  # nothing before it to integrate from
    energies = [r["energy"] for r in day[1:]]
    assert all(isinstance(e, dict) and e["complete"] and e["span_s"] == 60.0 for e in energies)
    total = {
        key: sum(float(e[key]) for e in energies if isinstance(e, dict))
        for key in ("pv_wh", "import_wh", "export_wh", "charge_wh", "discharge_wh", "house_wh")
    }
    # PV yield is the delta of the PV counter the readings carry (docs/protocol.md, "Energy").
    counter = [r["solar"]["energy_total_wh"] for r in (day[0], day[-1])]  # type: ignore[index]
    assert math.isclose(total["pv_wh"], counter[1] - counter[0], abs_tol=0.01)
    # House is the balance of the others, the day through.
    balance = (
        total["pv_wh"]
        + total["import_wh"]
        - total["export_wh"]
        + total["discharge_wh"]
        - total["charge_wh"]
    )
    assert math.isclose(total["house_wh"], balance, abs_tol=1.0)
    # A sunny day of the simulated site: PV in the day only, a house that draws at night.
    assert total["pv_wh"] > 5_000
    night = [r["energy"] for r in day[1:] if ts(r) < DAY + timedelta(hours=3)]
    assert all(e["pv_wh"] == 0 and e["house_wh"] > 0 for e in night)  # type: ignore[index]


def test_the_same_day_twice_is_the_same() -> None:
    first = simulated_day(DAY, step_s=600.0)
    assert simulated_day(DAY, step_s=600.0) == first
    assert simulated_day(DAY, step_s=600.0, seed=2) != first


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        simulated_day(datetime(2026, 12, 3))
    with pytest.raises(ValueError, match="step_s"):
        simulated_day(DAY, step_s=0)
