"""Composing a reading's sections from the devices' values, on plain values."""

from __future__ import annotations

import json

from edge.compose import compose
from edge.config import Role
from telemetry import Reading


def test_each_role_fills_its_section_and_the_owner_wins() -> None:
    composed = compose(
        {
            Role.SOLAR: {
                "solar": {"pv_power_w": 3230.0},
                "battery": {"voltage_v": 52.0, "current_a": -20.0},
                "extra": {"charger_temp_c": 31.0},
            },
            Role.BATTERY: {"battery": {"voltage_v": 51.9, "soc_pct": 76.5}},
            Role.GRID: {"grid": {"power_w": -850.0, "phase_voltage_v": [230.8, 231.1, 229.9]}},
        }
    )
    assert composed.rejected == ()
    assert composed.sections == {
        "grid": {"power_w": -850.0, "phase_voltage_v": [230.8, 231.1, 229.9]},
        "solar": {"pv_power_w": 3230.0},
        "battery": {"voltage_v": 51.9, "soc_pct": 76.5, "current_a": -20.0},
        "extra": {"charger_temp_c": 31.0},
    }
    body = json.loads(composed.body())
    Reading.model_validate({"ts": "2026-11-26T05:30:00Z", **body})


def test_values_the_hub_would_refuse_are_left_out_one_by_one() -> None:
    composed = compose(
        {
            Role.INVERTER: {
                "inverter": {
                    "ac_power_w": 3000.0,
                    "ac_frequency_hz": 0.0,  # an idle inverter: outside 40..70 Hz
                    "temperature_c": 500.0,
                    "state": "mppt",
                    "not_a_field": 1.0,
                },
                "extra": {"fine": 1.0, "label": "text"},
            },
            Role.BATTERY: {"battery": {"soc_pct": 101.0}},
        }
    )
    assert composed.sections == {
        "inverter": {"ac_power_w": 3000.0, "state": "mppt"},
        "extra": {"fine": 1.0},
    }
    assert sorted(composed.rejected) == [
        "battery.soc_pct",
        "extra.label",
        "inverter.ac_frequency_hz",
        "inverter.temperature_c",
    ]


def test_nothing_fresh_is_an_empty_reading() -> None:
    assert compose({}).empty
    assert compose({Role.GRID: {"extra": {"x": 1.0}}}).empty
    assert not compose({Role.GRID: {"grid": {"power_w": 1.0}}}).empty
