"""The simulated Fronius GEN24 Plus site, read over real TCP as an installer would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.profiles import fronius, get_profile
from drivers.profiles.describe import representative_map
from drivers.profiles.fronius import gen24_map
from drivers.profiles.identify import identify
from drivers.transports import open_transport
from simulation.fronius_site import LAYOUT
from simulation.runner import SimulatedSite

NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)
GEN24_CHAIN = fronius.GEN24_CHAIN


async def test_inverter_battery_and_meter_show_the_plant() -> None:
    async with SimulatedSite(layout=LAYOUT, tcp=("127.0.0.1", 0), start=NOON, seed=5) as site:
        for _ in range(4):
            site.step(900.0)
        sections = site.state.sections()
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=site.tcp_port)
        async with open_transport(config) as transport:
            named = {unit: (await identify(transport, unit)).profile for unit in (1, 200)}
            device = Device(transport, unit=1, profile="fronius_gen24")
            first = await device.read()  # discovery: the marker, 8 model headers, the end
            inverter = await device.read()
            meter = await Device(transport, unit=200, profile="fronius_smart_meter").read()
    assert named == {1: "fronius_gen24", 200: "fronius_smart_meter"}
    battery, solar, grid = sections["battery"], sections["solar"], sections["grid"]
    assert isinstance(battery["power_w"], float)
    assert isinstance(solar["pv_power_w"], float)
    assert isinstance(grid["power_w"], float)
    # uint16 watts per module (DCW_SF 0): each side within a watt.
    assert inverter.section("battery")["power_w"] == pytest.approx(battery["power_w"], abs=1.0)
    assert inverter.section("battery")["soc_pct"] == pytest.approx(battery["soc_pct"], abs=0.1)
    assert inverter.section("battery")["state"] == battery["state"]
    assert inverter.section("solar")["pv_power_w"] == pytest.approx(solar["pv_power_w"], abs=1.0)
    assert meter.section("grid")["power_w"] == pytest.approx(grid["power_w"], abs=0.5)
    # Discovery found the chain the GEN24 map documents, then reads it in its plan.
    assert device.register_map == gen24_map(GEN24_CHAIN)
    assert first.transactions == 1 + 9 + 2
    assert inverter.transactions == 2


def test_plans_of_the_gen24_chain() -> None:
    reg_map = gen24_map(GEN24_CHAIN)
    assert [(r.address, r.count) for r in reg_map.plan] == [(40071, 37), (40255, 113)]
    assert len(reg_map.minimal_plan) == 2
    assert get_profile("fronius_smart_meter").default_unit == 200
    # The catalogue shows the documented chains: two requests, and one for the meter.
    assert [
        (r.address, r.count) for r in representative_map(get_profile("fronius_gen24")).plan
    ] == [
        (40071, 37),
        (40255, 113),
    ]
    assert len(representative_map(get_profile("fronius_smart_meter")).plan) == 1
