"""Composing a reading's sections from the devices' values, on plain values."""

from __future__ import annotations

import json

from edge.compose import Member, compose, compose_site
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


# --- several devices per role (compose_site) --------------------------------------------

EAST = {
    "inverter": {"ac_power_w": 2000.0, "energy_total_wh": 1000.0, "state": "mppt"},
    "solar": {"pv_power_w": 2100.0},
    "extra": {"pv1_voltage_v": 350.0},
}
WEST = {
    "inverter": {"ac_power_w": 1000.0, "energy_total_wh": 500.0, "state": "mppt"},
    "solar": {"pv_power_w": 1050.0},
    "extra": {"pv1_voltage_v": 310.0},
}
MAIN = {"grid": {"power_w": 1500.0, "import_energy_wh": 9000.0}}
HEAT_PUMP = {"grid": {"power_w": 1200.0, "import_energy_wh": 3000.0}}


def site(**fresh: object) -> list[Member]:
    values = {"east": EAST, "west": WEST, "main": MAIN, "heat_pump": HEAT_PUMP, **fresh}
    return [
        Member("east", Role.INVERTER, True, values["east"]),  # type: ignore[arg-type]
        Member("west", Role.INVERTER, True, values["west"]),  # type: ignore[arg-type]
        Member("main", Role.GRID, True, values["main"]),  # type: ignore[arg-type]
        Member("heat_pump", Role.GRID, False, values["heat_pump"]),  # type: ignore[arg-type]
    ]


def test_totals_in_the_sections_and_each_device_beside_them() -> None:
    composed = compose_site(site())
    assert composed.rejected == ()
    assert composed.sections == {
        "inverter": {"ac_power_w": 3000.0, "energy_total_wh": 1500.0, "state": "mppt"},
        # The inverters' own solar values add up too, as a hybrid's fill today.
        "solar": {"pv_power_w": 3150.0},
        # The sub-meter is not added: the main meter already measures its load.
        "grid": {"power_w": 1500.0, "import_energy_wh": 9000.0},
        "extra": {"pv1_voltage_v": 350.0},  # a clash: the first device keeps the name
    }
    assert composed.devices == {
        "east": {"role": "inverter", **EAST},
        "west": {"role": "inverter", **WEST},
        "main": {"role": "grid", **MAIN},
        "heat_pump": {"role": "grid", "total": False, **HEAT_PUMP},
    }
    body = json.loads(composed.body())
    assert body["devices"] == composed.devices
    reading = Reading.model_validate({"ts": "2026-11-26T05:30:00Z", **body})
    assert reading.devices is not None
    assert reading.devices["heat_pump"].total is False


def test_a_failing_device_leaves_its_role_s_sums_out_and_its_entry_missing() -> None:
    composed = compose_site(site(west=None))
    assert composed.sections["inverter"] == {"state": "mppt"}
    assert "solar" not in composed.sections
    assert set(composed.devices) == {"east", "main", "heat_pump"}


def test_bad_values_of_one_device_are_left_out_of_its_entry_and_the_totals() -> None:
    bad = {"inverter": {"ac_power_w": 1000.0, "temperature_c": 500.0}}
    composed = compose_site(site(west=bad))
    assert composed.rejected == ("devices.west.inverter.temperature_c",)
    assert composed.devices["west"] == {"role": "inverter", "inverter": {"ac_power_w": 1000.0}}
    assert composed.sections["inverter"]["ac_power_w"] == 3000.0


def test_battery_stacks_weighted_by_the_capacity_their_bms_reports() -> None:
    def stack(soc: float, ah: float) -> dict[str, dict[str, float]]:
        return {
            "battery": {"soc_pct": soc, "voltage_v": 51.2, "power_w": -500.0},
            "extra": {"bms_full_capacity_ah": ah},
        }

    composed = compose_site(
        [
            Member("stack_a", Role.BATTERY, True, stack(90.0, 200.0)),
            Member("stack_b", Role.BATTERY, True, stack(30.0, 100.0)),
        ]
    )
    assert composed.sections["battery"] == {"soc_pct": 70.0, "voltage_v": 51.2, "power_w": -1000.0}


def test_sub_meters_alone_make_no_reading() -> None:
    composed = compose_site(
        [Member("main", Role.GRID, True, None), Member("ev", Role.GRID, False, HEAT_PUMP)]
    )
    assert composed.empty
