"""The simulated SolarEdge site, read over real TCP and RTU (pty) as an installer would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.errors import ExceptionCode, ExceptionResponse, ModbusError
from drivers.profiles.identify import identify
from drivers.profiles.solaredge import SOLAREDGE
from drivers.registers import RegisterType
from drivers.transports import open_transport
from simulation.runner import SimulatedSite
from simulation.solaredge_site import LAYOUT, inverter_sees
from tests.drivers.precision import mismatches
from tests.support.modbus import served_bus

NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)
H = RegisterType.HOLDING


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
async def test_the_inverter_shows_the_plant_with_its_meter_and_battery(kind: str) -> None:
    async with SimulatedSite(
        layout=LAYOUT, tcp=("127.0.0.1", 0), rtu=kind == "rtu", start=NOON, seed=4
    ) as site:
        for _ in range(4):
            site.step(900.0)  # an hour: every lifetime counter has counted something
        sections = site.state.sections()
        async with open_transport(served_bus(kind, site)) as transport:
            reading = await Device(transport, unit=1, profile="solaredge").read()
    assert reading.transactions == 3  # inverter, meter 1, battery 1
    shown = inverter_sees(sections)
    # An acc32 of 0 reads as "not implemented" (the note: "Unsupported or invalid
    # accumulators may return 0x00000000"): a counter still at 0 is absent.
    for section in ("inverter", "grid"):
        for name in [n for n, v in shown[section].items() if n.endswith("_wh") and v == 0.0]:
            del shown[section][name]
            assert name not in reading.section(section)
    assert mismatches(SOLAREDGE, shown, reading.sections) == []
    # Signs are the protocol's, whatever the device counts positive.
    grid, battery = sections["grid"], sections["battery"]
    assert isinstance(grid["power_w"], float)
    assert isinstance(battery["power_w"], float)
    assert reading.section("grid")["power_w"] == pytest.approx(grid["power_w"], abs=0.5)
    assert reading.section("battery")["power_w"] == pytest.approx(battery["power_w"], rel=1e-6)
    # PV is the DC input plus what the battery takes.
    inverter_dc = sections["inverter"]["dc_power_w"]
    assert isinstance(inverter_dc, float)
    assert reading.section("solar")["pv_power_w"] == pytest.approx(
        max(inverter_dc - battery["power_w"], 0.0), abs=1.0
    )


async def test_scan_names_it_and_discovery_sees_the_same_chain_with_the_meters_own_sign() -> None:
    async with SimulatedSite(layout=LAYOUT, tcp=("127.0.0.1", 0), start=NOON, seed=4) as site:
        site.step(1.0)
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=site.tcp_port)
        async with open_transport(config) as transport:
            identity = await identify(transport, 1)
            fixed = await Device(transport, unit=1, profile="solaredge").read()
            discovered = await Device(transport, unit=1, profile="sunspec").read()
            with pytest.raises(ExceptionResponse) as refused:
                await transport.read(H, 40297, 2, unit=1)  # meter 2: not enabled
            end = await transport.read(H, 40295, 2, unit=1)
    assert identity.profile == "solaredge"
    assert identity.description == 'SunSpec device at 40000: "SolarEdge" model "SE10K-RWS"'
    # The fixed layout is a valid SunSpec chain: discovery finds the same inverter...
    assert discovered.section("inverter")["ac_power_w"] == fixed.section("inverter")["ac_power_w"]
    # ...but reads the meter with SolarEdge's export-positive sign, which the profile turns.
    power = fixed.section("grid")["power_w"]
    assert isinstance(power, float)
    assert power != 0.0
    assert discovered.section("grid")["power_w"] == -power
    assert refused.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS
    assert tuple(end) == (0xFFFF, 0)


async def test_a_second_modbus_tcp_client_is_refused_as_the_note_says() -> None:
    # "Only a single connection and session are supported" (MODBUS over TCP Support).
    async with SimulatedSite(layout=LAYOUT, tcp=("127.0.0.1", 0), start=NOON, seed=4) as site:
        site.step(1.0)

        def bus(timeout_s: float) -> BusConfig:
            return BusConfig(
                "lan",
                BusType.TCP,
                host="127.0.0.1",
                port=site.tcp_port,
                timeout_s=timeout_s,
                retries=0,
            )

        async with open_transport(bus(1.0)) as first:
            before = await Device(first, unit=1, profile="solaredge").read()
            async with open_transport(bus(0.5)) as second:
                with pytest.raises(ModbusError):
                    await second.read(H, 40000, 2, unit=1)
            assert site.server.refused_clients >= 1
            after = await Device(first, unit=1, profile="solaredge").read()
    # The first client never noticed.
    assert before.section("inverter")
    assert after.section("inverter")
