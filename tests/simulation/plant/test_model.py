"""The whole plant: balance at every step, in every scenario, at any step size."""

from __future__ import annotations

import functools
import itertools
import math
import re
from datetime import UTC, datetime, timedelta

import pytest

import simulation.plant.state as state_module
from simulation.plant import Plant, PlantState, Scenario
from simulation.plant.battery import BatterySpec
from simulation.plant.equipment import SiteSpec
from simulation.plant.scenarios import scenario_start
from telemetry import SECTION_MODELS, Reading

# Local midnight (UTC+1 by the default longitude) at midsummer.
START = datetime(2026, 6, 20, 23, tzinfo=UTC)
DAY_S = 86_400.0
# Step sequences covering a day: fine, medium, coarse, huge and irregular.
STEP_PLANS: dict[str, tuple[float, ...]] = {
    "30s": (30.0,) * 2880,
    "5min": (300.0,) * 288,
    "1h": (3600.0,) * 24,
    "6h": (21_600.0,) * 4,
    "irregular": tuple([0.5, 7.0, 61.0, 1.0, 333.0, 2.5, 900.0] * 120),
}
SOC_MIN = BatterySpec().soc_min_pct
SOC_MAX = BatterySpec().soc_max_pct


@functools.cache
def _run(scenario: Scenario, plan: str, seed: int = 42) -> tuple[PlantState, ...]:
    plant = Plant(scenario, seed=seed, start=START)
    return (plant.state, *(plant.step(dt) for dt in STEP_PLANS[plan]))


def _close(a: float, b: float, *scale: float) -> bool:
    return math.isclose(a, b, rel_tol=0.0, abs_tol=1e-9 * max(1.0, *map(abs, scale)))


ALL_RUNS = [(scenario, plan) for scenario in Scenario for plan in STEP_PLANS]


@pytest.mark.parametrize(("scenario", "plan"), ALL_RUNS)
def test_energy_balances_at_every_step(scenario: Scenario, plan: str) -> None:
    for state in _run(scenario, plan):
        f = state.flow
        scale = (f.pv_w, f.load_w, f.battery_w, f.inverter_dc_w, f.grid_w)
        # PV DC in = charger losses + battery charge/discharge + inverter DC side.
        assert _close(f.pv_w, f.charger_loss_w - f.battery_w + f.inverter_dc_w, *scale)
        # Inverter AC out + grid import = house load + grid export.
        imported, exported = max(0.0, f.grid_w), max(0.0, -f.grid_w)
        assert _close(f.inverter_ac_w + imported, state.house.power_w + exported, *scale)
        assert _close(f.inverter_dc_w, f.inverter_ac_w + f.inverter_loss_w, *scale)
        # The reported sections say the same.
        sections = state.sections()
        assert _close(sections["grid"]["power_w"], f.grid_w, *scale)  # type: ignore[arg-type]
        assert _close(sections["battery"]["power_w"], f.battery_w, *scale)  # type: ignore[arg-type]
        assert sections["solar"]["pv_power_w"] == f.pv_w
        assert sections["inverter"]["ac_power_w"] == f.inverter_ac_w
        phases = sections["grid"]["phase_power_w"]
        assert isinstance(phases, list)
        assert _close(sum(phases), f.grid_w, *scale)


@pytest.mark.parametrize(("scenario", "plan"), ALL_RUNS)
def test_counters_integrate_the_powers_and_balance_over_the_day(
    scenario: Scenario, plan: str
) -> None:
    states = _run(scenario, plan)
    for before, after in itertools.pairwise(states):
        hours = after.dt_s / 3600.0
        f = after.flow
        net = (after.grid.import_energy_wh - before.grid.import_energy_wh) - (
            after.grid.export_energy_wh - before.grid.export_energy_wh
        )
        assert _close(net, f.grid_w * hours, after.grid.import_energy_wh, f.grid_w * hours)
        assert after.grid.import_energy_wh >= before.grid.import_energy_wh
        assert after.grid.export_energy_wh >= before.grid.export_energy_wh
        assert after.inverter.energy_total_wh >= before.inverter.energy_total_wh
        assert after.pv.energy_total_wh >= before.pv.energy_total_wh
    e = states[-1].energy
    scale = (e.pv_wh, e.house_wh, e.battery_charged_wh, e.grid_import_wh, e.grid_export_wh)
    assert _close(e.pv_wh, e.charger_loss_wh + e.charger_out_wh, *scale)
    assert _close(
        e.charger_out_wh + e.battery_discharged_wh - e.battery_charged_wh, e.inverter_dc_wh, *scale
    )
    assert _close(e.inverter_dc_wh, e.inverter_ac_wh + e.inverter_loss_wh, *scale)
    assert _close(e.inverter_ac_wh + e.grid_import_wh - e.grid_export_wh, e.house_wh, *scale)
    assert e.house_wh > 0.0


@pytest.mark.parametrize(("scenario", "plan"), ALL_RUNS)
def test_soc_stays_within_its_limits_and_follows_the_current(scenario: Scenario, plan: str) -> None:
    states = _run(scenario, plan)
    efficiency = BatterySpec().coulombic_efficiency
    for before, after in itertools.pairwise(states):
        battery = after.battery
        assert SOC_MIN - 1e-9 <= battery.soc_pct <= SOC_MAX
        ah = battery.current_a * after.dt_s / 3600.0
        stored = ah if ah >= 0 else ah * efficiency
        expected = before.battery.soc_pct - 100.0 * stored / before.battery.full_capacity_ah
        assert battery.soc_pct == pytest.approx(min(SOC_MAX, expected), abs=1e-9)


@pytest.mark.parametrize(("scenario", "plan"), ALL_RUNS)
def test_equipment_ratings_and_bms_limits_hold(scenario: Scenario, plan: str) -> None:
    site = SiteSpec()
    states = _run(scenario, plan)
    for before, after in itertools.pairwise(states):
        assert 0.0 <= after.charger.battery_current_a <= site.charger.rated_charge_current_a
        assert 0.0 <= after.inverter.ac_power_w <= site.inverter.rated_power_w
        assert after.pv.voltage_v < site.charger.max_pv_voltage_v
        assert after.pv.power_w <= after.pv.available_power_w * (1 + 1e-9) + 1e-9
        # The BMS limits at the start of the step bound the step's current.
        tolerance = 1e-9 * site.battery.max_discharge_current_a
        assert after.battery.current_a <= before.battery.max_discharge_current_a + tolerance
        assert -after.battery.current_a <= before.battery.max_charge_current_a + tolerance
        assert len(after.battery.cell_voltages_v) == site.battery.cells_in_series


@pytest.mark.parametrize(("scenario", "plan"), ALL_RUNS)
def test_every_reading_validates_with_the_protocol_field_names(
    scenario: Scenario, plan: str
) -> None:
    for state in _run(scenario, plan):
        sections = state.sections()
        assert set(sections) == {*SECTION_MODELS, "extra"}
        for name, model in SECTION_MODELS.items():
            assert set(sections[name]) == set(model.model_fields), name
        reading = Reading.model_validate(
            {"ts": state.time, **sections}, context={"now": state.time}
        )
        assert reading.battery is not None
        assert reading.battery.soc_pct == state.battery.soc_pct
        assert reading.extra is not None
        assert len(reading.extra) == len(sections["extra"])


def test_every_extra_name_is_documented() -> None:
    doc = state_module.__doc__ or ""
    extra = _run(Scenario.SUNNY, "1h")[12].sections()["extra"]
    assert len(extra) > 30
    for name in extra:
        pattern = re.sub(r"_l[1-3]_", "_lN_", name)
        pattern = re.sub(r"_\d\d_", "_NN_", pattern)
        pattern = re.sub(r"_\d_", "_N_", pattern)
        assert f"| {pattern} " in doc, name


def test_same_seed_same_series_and_another_seed_another() -> None:
    def series(seed: int) -> list[object]:
        plant = Plant(Scenario.CLOUDY, seed=seed, start=START + timedelta(hours=10))
        return [plant.step(20.0).sections() for _ in range(200)]

    assert series(1) == series(1)
    assert series(1) != series(2)


def test_weather_and_load_at_an_instant_do_not_depend_on_the_step_size() -> None:
    fine = {state.time: state for state in _run(Scenario.CLOUDY, "30s")}
    for coarse in _run(Scenario.CLOUDY, "1h"):
        same = fine[coarse.time]
        assert same.sun == coarse.sun
        assert same.house.load == coarse.house.load
        assert same.pv.available_power_w == coarse.pv.available_power_w
        assert same.grid.meter.frequency_hz == coarse.grid.meter.frequency_hz


@pytest.mark.parametrize("plan", list(STEP_PLANS))
def test_night_has_no_pv(plan: str) -> None:
    for state in _run(Scenario.NIGHT, plan):
        assert state.pv.power_w == 0.0
        assert state.sections()["solar"]["pv_power_w"] == 0.0
        assert state.grid.power_w >= -1e-9  # nothing to export
    assert max(state.sun.elevation_deg for state in _run(Scenario.NIGHT, plan)) > 30.0


@pytest.mark.parametrize("plan", ["30s", "5min", "1h"])
def test_a_full_battery_stops_charging_and_the_surplus_is_exported(plan: str) -> None:
    states = _run(Scenario.BATTERY_FULL, plan)
    assert states[0].battery.soc_pct == SOC_MAX
    exported_while_full = 0
    for before, after in itertools.pairwise(states):
        if before.battery.soc_pct >= SOC_MAX:
            assert after.battery.power_w >= 0.0
            assert after.battery.current_a >= 0.0
            if after.flow.charger_out_w > after.flow.inverter_dc_w:
                raise AssertionError("surplus neither stored nor exported")
            if after.grid.power_w < -100.0:
                exported_while_full += 1
    assert exported_while_full > 0
    assert states[-1].grid.export_energy_wh > 5000.0


@pytest.mark.parametrize("plan", ["30s", "5min", "1h"])
def test_an_empty_battery_stops_discharging_and_the_deficit_is_imported(plan: str) -> None:
    states = _run(Scenario.BATTERY_EMPTY, plan)
    assert states[0].battery.soc_pct == SOC_MIN
    imported_while_empty = 0
    for before, after in itertools.pairwise(states):
        if before.battery.soc_pct <= SOC_MIN:
            assert after.battery.power_w <= 1e-9
            deficit = after.house.power_w - after.flow.inverter_ac_w
            assert after.grid.power_w == pytest.approx(deficit)
            if deficit > 100.0:
                imported_while_empty += 1
    assert imported_while_empty > 0


def test_the_battery_covers_the_evening_and_the_sun_charges_it() -> None:
    states = _run(Scenario.SUNNY, "5min")
    evening = next(s for s in states if s.time == START + timedelta(hours=22))
    assert evening.battery.power_w > 0
    assert evening.battery.current_a > 0
    assert evening.inverter.ac_power_w > 0
    assert evening.sections()["battery"]["state"] == "discharging"
    morning = next(s for s in states if s.time == START + timedelta(hours=9))
    assert morning.pv.power_w > 1000.0
    assert morning.battery.power_w < 0
    assert morning.battery.current_a < 0
    assert morning.sections()["battery"]["state"] == "charging"
    assert morning.charger.battery_current_a > 0


def test_energy_today_resets_at_local_midnight() -> None:
    plant = Plant(Scenario.SUNNY, seed=3, start=START)
    last_of_day = None
    for _ in range(287):  # to 23:55 local
        last_of_day = plant.step(300.0)
    assert last_of_day is not None
    assert last_of_day.pv.energy_today_wh == pytest.approx(last_of_day.pv.energy_total_wh)
    after_midnight = plant.step(300.0)
    assert after_midnight.pv.energy_today_wh == 0.0  # no sun at local 00:05
    assert after_midnight.pv.energy_total_wh == last_of_day.pv.energy_total_wh > 10_000.0


def test_a_one_second_hour_matches_the_coarse_physics() -> None:
    # Fine steps keep balance too, and the hour's imports agree with a coarse run.
    plant = Plant(Scenario.CLOUDY, seed=42, start=START + timedelta(hours=12))
    for _ in range(3600):
        state = plant.step(1.0)
        f = state.flow
        assert _close(f.pv_w, f.charger_loss_w - f.battery_w + f.inverter_dc_w, f.pv_w, f.load_w)
    assert state.time == START + timedelta(hours=13)


def test_state_before_the_first_step_is_the_start() -> None:
    plant = Plant("battery-full", seed=1, start=START, initial_soc_pct=33.0)
    assert plant.scenario is Scenario.BATTERY_FULL
    assert plant.state.time == START
    assert plant.state.dt_s == 0.0
    assert plant.state.battery.soc_pct == pytest.approx(33.0)
    stepped = plant.step(2.5)
    assert plant.state is stepped
    assert stepped.time == START + timedelta(seconds=2.5)


@pytest.mark.parametrize("dt_s", [0.0, -1.0, math.nan, math.inf])
def test_a_step_must_move_time_forward(dt_s: float) -> None:
    plant = Plant(Scenario.SUNNY, seed=1, start=START)
    with pytest.raises(ValueError, match="dt_s"):
        plant.step(dt_s)


def test_bad_construction_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Plant(Scenario.SUNNY, seed=1, start=datetime(2026, 6, 21))
    with pytest.raises(ValueError, match="unknown scenario"):
        Plant("hail", seed=1, start=START)
    with pytest.raises(ValueError, match="latitude"):
        Plant(Scenario.SUNNY, seed=1, start=START, latitude_deg=91.0)


@pytest.mark.parametrize("seed", [1, 2, 3, 7])
def test_the_default_sunny_start_imports_exports_charges_and_discharges_within_minutes(
    seed: int,
) -> None:
    # ``ems sim`` / ``ems demo`` without a start: the scenario's own day and hour.
    start = scenario_start(Scenario.SUNNY, year=2026, utc_offset_h=1.0)
    assert start == datetime(2026, 5, 15, 10, tzinfo=UTC)  # 11:00 local
    plant = Plant(Scenario.SUNNY, seed=seed, start=start, with_opening=True)
    site = SiteSpec()
    states = [plant.step(1.0) for _ in range(180)]
    grid = [s.flow.grid_w for s in states]
    battery = [s.flow.battery_w for s in states]
    # Clearly both ways, not float noise: hundreds of watts.
    assert max(grid) > 300.0
    assert min(grid) < -300.0
    assert max(battery) > 300.0
    assert min(battery) < -300.0
    for state in states:
        f = state.flow
        scale = (f.pv_w, f.load_w, f.battery_w, f.inverter_dc_w, f.grid_w)
        assert _close(f.pv_w, f.charger_loss_w - f.battery_w + f.inverter_dc_w, *scale)
        assert _close(f.inverter_ac_w + f.grid_w, f.load_w, *scale)
        # The battery setpoints hold; the grid takes what they leave.
        assert -site.max_battery_charge_w - 1e-6 <= f.battery_w
        assert f.battery_w <= site.max_battery_discharge_w + 1e-6
        if f.grid_w < 0.0:  # exporting: only because the pack takes no more
            assert f.battery_w == pytest.approx(-site.max_battery_charge_w)
        if f.grid_w > 1e-6:  # importing: the pack gives all it may
            assert f.battery_w == pytest.approx(site.max_battery_discharge_w)
    assert "kettle" in states[150].house.load.active
    assert "oven" in states[150].house.load.active
