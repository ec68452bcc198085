"""The house's load profile and its seeded appliance events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulation.plant.load import BASE_PROFILE, HouseModel, HouseSpec, base_power

START = datetime(2026, 3, 2, tzinfo=UTC)


def _day(model: HouseModel, day: int, step_s: int = 60) -> list[tuple[datetime, float]]:
    begin = START + timedelta(days=day)
    return [
        (when, model.at(when, 0.0).power_w)
        for when in (begin + timedelta(seconds=s) for s in range(0, 86_400, step_s))
    ]


def test_base_profile_has_an_evening_peak_above_the_night() -> None:
    night = base_power(3.0)
    evening = base_power(19.5)
    assert evening > 3 * night
    assert base_power(0.0) == base_power(24.0) == BASE_PROFILE[0][1]
    assert base_power(25.0) == base_power(1.0)


def test_same_seed_same_load_and_another_seed_another() -> None:
    a = _day(HouseModel(HouseSpec(), 11), 0)
    b = _day(HouseModel(HouseSpec(), 11), 0)
    c = _day(HouseModel(HouseSpec(), 12), 0)
    assert a == b
    assert a != c


def test_load_at_an_instant_does_not_depend_on_what_was_asked_before() -> None:
    coarse = HouseModel(HouseSpec(), 5)
    fine = HouseModel(HouseSpec(), 5)
    for when, power in _day(coarse, 1, step_s=3600):
        assert fine.at(when, 0.0).power_w == power
    # Asking far ahead and back again gives the same answers (the cache is only a cache).
    fine.at(START + timedelta(days=30), 0.0)
    for when, power in _day(coarse, 1, step_s=3600):
        assert fine.at(when, 0.0).power_w == power


def test_appliances_run_on_most_days_at_their_power_and_phase() -> None:
    model = HouseModel(HouseSpec(), 7)
    seen: set[str] = set()
    for day in range(14):
        for when, _ in _day(model, day, step_s=30):
            load = model.at(when, 0.0)
            seen.update(load.active)
            if "kettle" in load.active:
                # The kettle (2.2 kW) sits on L2.
                assert load.phase_power_w[1] > 2200.0
    assert {"kettle", "washing_machine", "dishwasher", "fridge", "microwave"} <= seen


def test_phases_add_up_and_reactive_power_is_inductive() -> None:
    model = HouseModel(HouseSpec(), 7)
    for when, power in _day(model, 2, step_s=600):
        load = model.at(when, 0.0)
        assert sum(load.phase_power_w) == pytest.approx(power)
        assert all(p > 0 for p in load.phase_power_w)
        assert 0 < load.reactive_var < load.power_w


def test_the_utc_offset_moves_the_household_clock() -> None:
    model = HouseModel(HouseSpec(), 1)
    # The household lives by its local clock: at UTC+1 it does at 18:00 UTC what a
    # UTC household does at 19:00 UTC.
    for hour in range(24):
        when = datetime(2026, 3, 2, hour, 17, tzinfo=UTC)
        assert model.at(when, 1.0) == model.at(when + timedelta(hours=1), 0.0)
    evening = datetime(2026, 3, 2, 18, tzinfo=UTC)
    assert model.at(evening, 1.0) != model.at(evening, 0.0)
