"""Profiles outside the simulated site, served and read over real Modbus.

The SDM120 and a generic TOML map, encoded from plant-like values; and the
hand-typed SunSpec image of test_vendor_images served at base 0, so discovery
has to get past real "illegal address" answers at 40000.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.device import Device
from drivers.profile import encode_map
from drivers.profiles.eastron import SDM120
from drivers.profiles.generic import load_generic
from drivers.registers import RegisterType
from drivers.transports import open_transport
from simulation.modbus_server import DeviceServer, DeviceSpec
from tests.drivers.precision import mismatches
from tests.drivers.test_vendor_images import _SUNSPEC
from tests.support.modbus import served_bus

BUSES = ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"]

GRID = {
    "grid": {
        "voltage_v": 231.7,
        "current_a": 4.25,
        "power_w": -812.5,
        "power_factor": 0.97,
        "frequency_hz": 50.02,
        "import_energy_wh": 1523000.0,
        "export_energy_wh": 2210000.0,
    }
}

GENERIC = """
name = "acme-pm3"
max_count = 10
max_gap = 0

[[point]]
name = "Power"
address = 0
register_type = "holding"
data_type = "int32"
word_order = "CDAB"
scale = 0.1
target = "grid.power_w"

[[point]]
name = "Volts"
address = 2
register_type = "holding"
data_type = "uint16"
scale = 0.1
target = "grid.voltage_v"

[[point]]
name = "Energy in"
address = 20
register_type = "input"
data_type = "float32"
word_order = "BADC"
scale = 1000
target = "grid.import_energy_wh"
"""


@pytest.mark.parametrize("kind", BUSES)
async def test_sdm120_and_generic_maps_over_the_wire(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(GENERIC, encoding="utf-8")
    generic = load_generic(path)
    specs = [
        DeviceSpec(5, encode_map(SDM120, GRID), SDM120.max_count),
        DeviceSpec(6, encode_map(generic, GRID), generic.max_count),
    ]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=True) as server:
        transport = open_transport(served_bus(kind, server))
        async with transport:
            meter = Device(transport, unit=5, profile="eastron_sdm120")
            reading = await meter.read()
            assert reading.transactions == 1
            assert mismatches(SDM120, GRID, reading.sections) == []
            custom = Device(transport, unit=6, profile=generic)
            reading = await custom.read()
            assert reading.transactions == 2  # holding 0-2 (adjacent), input 20-21
            assert mismatches(generic, GRID, reading.sections) == []


@pytest.mark.parametrize("kind", BUSES)
async def test_hand_typed_sunspec_device_at_base_0(kind: str) -> None:
    image = {RegisterType.HOLDING: dict(enumerate(_SUNSPEC))}
    async with DeviceServer([DeviceSpec(1, image)], tcp=("127.0.0.1", 0), rtu=True) as server:
        transport = open_transport(served_bus(kind, server))
        async with transport:
            inverter = Device(transport, unit=1, profile="sunspec")
            reading = await inverter.read()
    # 40000: illegal address; 0: "SunS"; headers of 1, 103 and the end; one plan read.
    assert reading.transactions == 6
    assert dict(reading.section("inverter")) == {
        "ac_current_a": 13.5,
        "ac_voltage_v": 231.2,
        "ac_power_w": 3120.0,
        "ac_frequency_hz": 50.01,
        "energy_total_wh": 8_123_400.0,
        "dc_power_w": 3230.0,
        "temperature_c": 41.5,
        "state": "mppt",
    }
