"""The ``growatt`` site: what its devices show of the plant, and the site read over RTU."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.profiles.identify import identify
from drivers.transports import open_transport
from simulation.growatt_site import LAYOUT, sph_sections, tlx_sections
from simulation.runner import SimulatedSite
from simulation.sites import site_layout

NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)


def _num(values: Mapping[str, object], key: str) -> float:
    value = values[key]
    assert isinstance(value, float)
    return value


PLANT = {
    "inverter": {"ac_power_w": -1800.0, "ac_current_a": -7.8, "state": "mppt"},
    "grid": {"power_w": -640.0, "import_energy_wh": 5_000.0},
    "battery": {"power_w": -2100.0, "soc_pct": 41.0, "soh_pct": 97.0, "state": "charging"},
    "solar": {"pv_power_w": 3000.0},
    "extra": {"house_power_w": 512.0, "bms_charged_energy_wh": 9_900.0},
}


def test_the_sph_shows_signed_powers_as_growatts_unsigned_pairs() -> None:
    shown = sph_sections(PLANT)
    extra = shown["extra"]
    # Exporting 640 W: power to grid; charging 2100 W: charge power.
    assert extra["grid_import_power_w"] == 0.0
    assert extra["grid_export_power_w"] == 640.0
    assert extra["battery_discharge_power_w"] == 0.0
    assert extra["battery_charge_power_w"] == 2100.0
    assert extra["load_power_w"] == 512.0
    assert extra["battery_charged_energy_wh"] == 9_900.0
    assert extra["system_work_mode"] == 5.0  # PV and battery online
    # No signed AC output in V1.24: the inverter drawing power reads 0 W.
    assert shown["inverter"] == {"ac_power_w": 0.0, "ac_current_a": 0.0, "state": "normal"}
    # The SPH's battery group has no SOH register; the plant's is not shown.
    assert shown["battery"] == {"soc_pct": 41.0}


def test_the_tl3_x_shows_its_pv_and_ac_side_only() -> None:
    shown = tlx_sections({**PLANT, "inverter": {"state": "sleeping"}})
    assert set(shown) == {"inverter", "solar"}
    assert shown["inverter"]["state"] == "standby"
    assert tlx_sections({"inverter": {"state": "fault"}})["inverter"]["state"] == "fault"


def test_the_site_is_listed() -> None:
    assert site_layout("growatt") is LAYOUT
    assert [(d.unit, d.profile) for d in LAYOUT.devices] == [
        (1, "growatt_sph"),
        (2, "growatt_tlx"),
    ]


async def test_the_site_is_told_and_read_over_rtu() -> None:
    async with SimulatedSite(layout=LAYOUT, tcp=None, rtu=True, start=NOON, seed=5) as site:
        site.step(1.0)
        plant = site.state.sections()
        config = BusConfig("rs485", BusType.RTU, device=site.rtu_path, baudrate=115200)
        async with open_transport(config) as transport:
            names = [(await identify(transport, d.unit)).profile for d in LAYOUT.devices]
            sph = await Device(transport, unit=1, profile="growatt_sph").read()
            tlx = await Device(transport, unit=2, profile="growatt_tlx").read()
    assert names == ["growatt_sph", "growatt_tlx"]
    assert (sph.transactions, tlx.transactions) == (2, 2)
    grid, battery = sph.section("grid"), sph.section("battery")
    # Within the registers' 0.1 W and 1 % steps, with the protocol's signs.
    assert abs(_num(grid, "power_w") - _num(plant["grid"], "power_w")) <= 0.1
    assert abs(_num(battery, "power_w") - _num(plant["battery"], "power_w")) <= 0.1
    assert abs(_num(battery, "soc_pct") - _num(plant["battery"], "soc_pct")) <= 0.5
    assert battery["state"] == plant["battery"]["state"]
    solar = tlx.section("solar")
    assert abs(_num(solar, "pv_power_w") - _num(plant["solar"], "pv_power_w")) <= 0.1
