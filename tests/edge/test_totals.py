"""The site's totals over several devices of a role, on plain values (edge/totals.py)."""

from __future__ import annotations

import pytest

from edge.totals import RULES, capacity_wh, total_section
from telemetry import SECTION_MODELS


def test_every_protocol_field_has_a_rule() -> None:
    for section, model in SECTION_MODELS.items():
        assert set(RULES[section]) == set(model.model_fields), section


def test_one_device_passes_unchanged() -> None:
    grid = {"power_w": 850.0, "power_factor": 0.97, "phase_power_w": [1.0, 2.0, 3.0]}
    assert total_section("grid", [grid]) == grid


def test_two_inverters_add_powers_currents_and_counters_and_average_voltages() -> None:
    east = {
        "ac_power_w": 2000.0,
        "ac_current_a": 8.7,
        "ac_voltage_v": 230.0,
        "ac_frequency_hz": 50.0,
        "dc_power_w": 2100.0,
        "energy_total_wh": 1_000_000.0,
        "temperature_c": 40.0,
        "state": "mppt",
    }
    west = {
        "ac_power_w": 1000.0,
        "ac_current_a": 4.3,
        "ac_voltage_v": 232.0,
        "ac_frequency_hz": 50.02,
        "dc_power_w": 1050.0,
        "energy_total_wh": 500_000.0,
        "temperature_c": 45.5,
        "state": "mppt",
    }
    total = total_section("inverter", [east, west])
    assert total == {
        "ac_power_w": 3000.0,
        "ac_current_a": pytest.approx(13.0),
        "ac_voltage_v": 231.0,
        "ac_frequency_hz": pytest.approx(50.01),
        "dc_power_w": 3150.0,
        "energy_total_wh": 1_500_000.0,
        "temperature_c": 45.5,  # the hottest
        "state": "mppt",
    }


def test_sums_wait_for_every_device_but_averages_do_not() -> None:
    east = {"ac_power_w": 2000.0, "energy_total_wh": 10.0, "ac_voltage_v": 230.0}
    # West is failing: half the plant is not the plant, and a summed counter
    # would go backwards for this tick.
    assert total_section("inverter", [east], complete=False) == {"ac_voltage_v": 230.0}


def test_a_fault_anywhere_shows_otherwise_mixed() -> None:
    assert total_section("inverter", [{"state": "mppt"}, {"state": "fault"}]) == {"state": "fault"}
    assert total_section("battery", [{"state": "charging"}, {"state": "idle"}]) == {
        "state": "mixed"
    }
    assert total_section("battery", [{"state": "idle"}, {"state": "idle"}]) == {"state": "idle"}


def test_soc_is_weighted_by_capacity_when_every_stack_gives_one() -> None:
    full, empty = {"soc_pct": 100.0, "soh_pct": 90.0}, {"soc_pct": 0.0, "soh_pct": 99.0}
    # A full 10 kWh stack and an empty 5 kWh one hold two thirds of the site's capacity.
    total = total_section("battery", [full, empty], weights=[10_000.0, 5_000.0])
    assert total["soc_pct"] == pytest.approx(200 / 3)
    assert total["soh_pct"] == pytest.approx(93.0)
    # A capacity missing for one stack: the plain mean.
    assert total_section("battery", [full, empty], weights=[10_000.0, None])["soc_pct"] == 50.0


def test_cells_take_the_extremes_and_batteries_add_power() -> None:
    a = {"cell_voltage_min_v": 3.25, "cell_voltage_max_v": 3.31, "power_w": -1000.0}
    b = {"cell_voltage_min_v": 3.21, "cell_voltage_max_v": 3.29, "power_w": -600.0}
    c = {"voltage_v": 52.0, "current_a": -20.0}
    d = {"voltage_v": 53.0, "current_a": -11.5}
    assert total_section("battery", [a, b]) == {
        "cell_voltage_min_v": 3.21,
        "cell_voltage_max_v": 3.31,
        "power_w": -1600.0,
    }
    assert total_section("battery", [c, d]) == {"voltage_v": 52.5, "current_a": -31.5}


def test_grid_meters_add_phase_by_phase_and_drop_the_power_factor() -> None:
    a = {"power_w": 100.0, "power_factor": 0.9, "phase_power_w": [10.0, 20.0, 70.0]}
    b = {"power_w": 50.0, "power_factor": 0.5, "phase_power_w": [5.0, 5.0, 40.0]}
    b_volts = {"phase_voltage_v": [230.0, 232.0, 234.0]}
    a_volts = {"phase_voltage_v": [232.0, 232.0, 232.0]}
    assert total_section("grid", [a, b]) == {"power_w": 150.0, "phase_power_w": [15.0, 25.0, 110.0]}
    assert total_section("grid", [a_volts, b_volts]) == {"phase_voltage_v": [231.0, 232.0, 233.0]}
    # One phase against three: no phase-by-phase total.
    one, three = {"phase_power_w": [1.0]}, {"phase_power_w": [1.0, 2.0, 3.0]}
    assert total_section("grid", [one, three]) == {}


def test_a_field_only_one_device_gives_is_its_value() -> None:
    assert total_section("solar", [{"pv_power_w": 10.0}, {"pv_voltage_v": 300.0}]) == {
        "pv_power_w": 10.0,
        "pv_voltage_v": 300.0,
    }


def test_capacity_from_the_bms_values() -> None:
    stack = {"battery": {"voltage_v": 51.2}, "extra": {"bms_full_capacity_ah": 100.0}}
    assert capacity_wh(stack) == pytest.approx(5120.0)
    assert capacity_wh({"extra": {"pack_full_capacity_wh": 9600.0}}) == 9600.0
    assert capacity_wh({"extra": {"bms_full_capacity_ah": 100.0}}) is None  # no voltage
    assert capacity_wh({"battery": {"voltage_v": 51.2}}) is None
