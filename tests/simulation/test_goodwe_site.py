"""The ``goodwe`` site: what its ET shows of the plant, and the site read over RTU at unit 247."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.profiles.identify import identify
from drivers.transports import open_transport
from simulation.goodwe_site import LAYOUT, et_sections
from simulation.runner import SimulatedSite
from simulation.sites import site_layout

NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)


def _num(values: Mapping[str, object], key: str) -> float:
    value = values[key]
    assert isinstance(value, float)
    return value


def test_plant_states_become_goodwe_modes() -> None:
    plant = {
        "inverter": {"state": "throttled", "ac_power_w": -900.0},
        "battery": {"state": "charging", "power_w": -900.0},
        "solar": {"pv_power_w": 0.0},
        "extra": {"house_power_w": 300.0, "inverter_rated_power_w": 5000.0},
    }
    shown = et_sections(plant)
    assert shown["inverter"] == {"state": "on_grid", "ac_power_w": -900.0}  # signed in 35138
    assert shown["battery"] == {"state": "charging", "power_w": -900.0}
    assert shown["extra"] == {
        "inverter_rated_power_w": 5000.0,
        "load_power_w": 300.0,
        "pv1_power_w": 0.0,
    }
    assert et_sections({"inverter": {"state": "sleeping"}})["inverter"]["state"] == "waiting"
    assert et_sections({"inverter": {"state": "fault"}})["inverter"]["state"] == "fault"


def test_the_site_is_listed() -> None:
    assert site_layout("goodwe") is LAYOUT
    assert [(d.unit, d.profile) for d in LAYOUT.devices] == [(247, "goodwe_et")]


async def test_the_site_is_told_and_read_over_rtu() -> None:
    async with SimulatedSite(layout=LAYOUT, tcp=None, rtu=True, start=NOON, seed=7) as site:
        site.step(1.0)
        plant = site.state.sections()
        config = BusConfig("rs485", BusType.RTU, device=site.rtu_path, baudrate=115200)
        async with open_transport(config) as transport:
            identity = await identify(transport, 247)
            reading = await Device(transport, unit=247, profile="goodwe_et").read()
    assert identity.profile == "goodwe_et"
    assert reading.transactions == 3
    grid, battery = reading.section("grid"), reading.section("battery")
    # Whole watts in the registers, the protocol's signs after decoding.
    assert abs(_num(grid, "power_w") - _num(plant["grid"], "power_w")) <= 0.5
    assert abs(_num(battery, "power_w") - _num(plant["battery"], "power_w")) <= 0.5
    assert abs(_num(battery, "current_a") - _num(plant["battery"], "current_a")) <= 0.05
    assert abs(_num(battery, "soc_pct") - _num(plant["battery"], "soc_pct")) <= 0.5
    assert battery["state"] == plant["battery"]["state"]
