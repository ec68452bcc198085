"""The grid as the slack, and the scenario's weather."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from simulation.plant.grid import GridModel, GridSpec
from simulation.plant.scenarios import SCENARIOS, Scenario
from simulation.plant.weather import WeatherModel, clear_sky_index

WHEN = datetime(2026, 6, 21, 12, tzinfo=UTC)


def test_export_on_a_phase_raises_its_voltage_import_lowers_it() -> None:
    grid = GridModel(GridSpec(), 1)
    idle = grid.measure(WHEN, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    loaded = grid.measure(WHEN, (-3000.0, 2000.0, 0.0), (0.0, 0.0, 0.0))
    assert loaded.phase_voltage_v[0] > idle.phase_voltage_v[0]
    assert loaded.phase_voltage_v[1] < idle.phase_voltage_v[1]
    assert loaded.phase_voltage_v[2] == idle.phase_voltage_v[2]


def test_currents_power_factor_and_totals_follow_the_phases() -> None:
    grid = GridModel(GridSpec(), 1)
    meter = grid.measure(WHEN, (-1000.0, 500.0, 300.0), (0.0, 200.0, 100.0))
    assert meter.power_w == pytest.approx(-200.0)
    assert meter.reactive_var == pytest.approx(300.0)
    for p, q, v, i in zip(
        meter.phase_power_w,
        meter.phase_reactive_var,
        meter.phase_voltage_v,
        meter.phase_current_a,
        strict=True,
    ):
        assert i == pytest.approx(math.hypot(p, q) / v)
    assert meter.current_a == pytest.approx(sum(meter.phase_current_a))
    assert meter.power_factor == pytest.approx(200.0 / math.hypot(200.0, 300.0))
    still = grid.measure(WHEN, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    assert still.power_factor == 1.0


def test_voltage_and_frequency_stay_near_nominal_and_move() -> None:
    grid = GridModel(GridSpec(), 4)
    readings = [
        grid.measure(WHEN + timedelta(seconds=s), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
        for s in range(0, 3600, 7)
    ]
    frequencies = [r.frequency_hz for r in readings]
    assert all(49.8 <= f <= 50.2 for f in frequencies)
    assert max(frequencies) - min(frequencies) > 0.01
    voltages = [v for r in readings for v in r.phase_voltage_v]
    assert all(220.0 < v < 240.0 for v in voltages)
    assert len(set(voltages)) > 100


def test_clear_sky_index_runs_from_clear_to_overcast() -> None:
    assert clear_sky_index(0.0) == 1.0
    assert clear_sky_index(1.0) == pytest.approx(0.25)
    values = [clear_sky_index(c / 10) for c in range(11)]
    assert values == sorted(values, reverse=True)


def test_cloudy_skies_vary_and_clear_ones_stay_clear() -> None:
    instants = [WHEN + timedelta(minutes=m) for m in range(0, 8 * 60, 2)]
    cloudy = WeatherModel(SCENARIOS[Scenario.CLOUDY], 9, 52.5)
    sunny = WeatherModel(SCENARIOS[Scenario.SUNNY], 9, 52.5)
    cloudy_index = [cloudy.at(t, 13.4).clear_sky_index for t in instants]
    sunny_index = [sunny.at(t, 13.4).clear_sky_index for t in instants]
    assert max(cloudy_index) - min(cloudy_index) > 0.3
    assert min(sunny_index) > 0.95
    assert sum(cloudy_index) < sum(sunny_index)


def test_night_has_no_daylight_and_the_sky_depends_on_the_seed() -> None:
    night = WeatherModel(SCENARIOS[Scenario.NIGHT], 1, 52.5)
    assert night.at(WHEN, 13.4).clear_sky_index == 0.0
    a = WeatherModel(SCENARIOS[Scenario.CLOUDY], 1, 52.5)
    b = WeatherModel(SCENARIOS[Scenario.CLOUDY], 2, 52.5)
    series_a = [a.at(WHEN + timedelta(minutes=m), 13.4).cloud_cover for m in range(60)]
    series_b = [b.at(WHEN + timedelta(minutes=m), 13.4).cloud_cover for m in range(60)]
    assert series_a != series_b


def test_summer_is_warmer_than_winter_and_afternoon_than_dawn() -> None:
    weather = WeatherModel(SCENARIOS[Scenario.SUNNY], 1, 52.5)
    summer = weather.at(datetime(2026, 7, 15, 14, tzinfo=UTC), 13.4).outdoor_temperature_c
    winter = weather.at(datetime(2026, 1, 15, 14, tzinfo=UTC), 13.4).outdoor_temperature_c
    dawn = weather.at(datetime(2026, 7, 15, 3, tzinfo=UTC), 13.4).outdoor_temperature_c
    assert summer > winter + 10
    assert summer > dawn
    south = WeatherModel(SCENARIOS[Scenario.SUNNY], 1, -33.9)
    assert south.at(datetime(2026, 1, 15, 4, tzinfo=UTC), 151.2).outdoor_temperature_c > (
        south.at(datetime(2026, 7, 15, 4, tzinfo=UTC), 151.2).outdoor_temperature_c
    )


@pytest.mark.parametrize("name", ["sunny", "Battery-Full", " battery_empty ", "NIGHT"])
def test_scenario_names_parse_loosely(name: str) -> None:
    assert Scenario.parse(name).value == name.strip().lower().replace("-", "_")


def test_an_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="sunny, cloudy, night, battery_full, battery_empty"):
        Scenario.parse("stormy")
