"""The "meters" site: a DTSU666, an EM24 and an SDM72 on one bus, read back over TCP and RTU."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.bus import Backend, BusConfig, BusType
from drivers.device import Device
from drivers.profiles.identify import identify, signatures
from drivers.registers import DataType, RegisterType, WordOrder, decode_value
from drivers.transports import open_transport
from edge.config import parse_config
from simulation.layout import config_lines, encode_layout
from simulation.meters_site import LAYOUT, Unit
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant, Sections
from simulation.sites import site_layout
from tests.drivers.precision import mismatches

NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)
HEAD = """
device_id = "meters_test"
[hub]
url = "ws://127.0.0.1:8000"
token = "t"
[buffer]
path = "buffer.db"
"""


def _sections() -> Sections:
    plant = Plant("sunny", seed=3, start=NOON)
    for _ in range(6):  # half an hour: the counters are past their first Wh
        plant.step(300.0)
    return plant.state.sections()


def _server(sections: Sections) -> DeviceServer:
    images = encode_layout(LAYOUT, sections)
    specs = [DeviceSpec.for_map(d.unit, images[d.unit], d.served) for d in LAYOUT.devices]
    return DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=True)


def _bus(kind: str, server: DeviceServer) -> BusConfig:
    if kind == "tcp":
        return BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port, timeout_s=2.0)
    backend = Backend.MINIMALMODBUS if kind.endswith("minimalmodbus") else Backend.PYMODBUS
    return BusConfig(
        "rs485",
        BusType.RTU,
        device=server.rtu_path,
        baudrate=115200,
        timeout_s=2.0,
        backend=backend,
    )


def test_the_layout() -> None:
    assert [(d.unit, d.profile, d.name) for d in LAYOUT.devices] == [
        (1, "chint_dtsu666", "grid_meter"),
        (2, "carlo_gavazzi_em24", "house_meter"),
        (3, "eastron_sdm72", "inverter_meter"),
    ]


def test_the_sub_meters_measure_the_plant() -> None:
    sections = _sections()
    house = LAYOUT.device(Unit.HOUSE_METER).measures(sections)["grid"]
    inverter = LAYOUT.device(Unit.INVERTER_METER).measures(sections)["grid"]
    plant_house = sections["extra"]["house_power_w"]
    plant_inverter = sections["inverter"]["ac_power_w"]
    assert isinstance(plant_house, float)
    assert isinstance(plant_inverter, float)
    assert house["power_w"] == pytest.approx(plant_house)
    assert inverter["power_w"] == pytest.approx(-plant_inverter)
    assert inverter["export_energy_wh"] == sections["inverter"]["energy_total_wh"]
    # Power balance at the connection point: grid = house - inverter output (no AC charging).
    grid = sections["grid"]["power_w"]
    assert isinstance(grid, float)
    assert grid == pytest.approx(plant_house - plant_inverter, abs=60.0)


@pytest.mark.parametrize("kind", ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"])
async def test_each_meter_reads_what_it_measures(kind: str) -> None:
    sections = _sections()
    async with _server(sections) as server, open_transport(_bus(kind, server)) as transport:
        transactions = 0
        for device in LAYOUT.devices:
            reading = await Device(transport, unit=device.unit, profile=device.profile).read()
            transactions += reading.transactions
            assert mismatches(device.served, device.measures(sections), reading.sections) == [], (
                device.name
            )
            assert reading.section("grid"), device.name
    # One poll of the bus: DTSU666 3 requests, EM24 3, SDM72 1.
    assert transactions == 7


async def test_identify_names_each_meter_and_no_other_signature_matches() -> None:
    async with _server(_sections()) as server, open_transport(_bus("tcp", server)) as transport:
        found = {d.unit: (await identify(transport, d.unit)).profile for d in LAYOUT.devices}
        matching = {
            d.unit: [
                name
                for name, signature in signatures()
                if (await identify(transport, d.unit, [(name, signature)])).profile
            ]
            for d in LAYOUT.devices
        }
    assert found == {d.unit: d.profile for d in LAYOUT.devices}
    assert matching == {
        1: ["chint_dtsu666"],
        2: ["carlo_gavazzi_em24"],
        # The SDM630's and SDM120's registers are the SDM72's 30001-30076 too;
        # the SDM72's own signature (31281) is tried before theirs.
        3: ["eastron_sdm72", "eastron_sdm630", "eastron_sdm120"],
    }


async def test_the_sdm72_serves_its_power_shares_and_the_dtsu666_its_settings() -> None:
    sections = _sections()
    async with _server(sections) as server, open_transport(_bus("tcp", server)) as transport:
        shares = await transport.read(RegisterType.INPUT, 0x0500, 4, unit=3)
        settings = await transport.read(RegisterType.HOLDING, 0x002C, 3, unit=1)
    imported = decode_value(DataType.FLOAT32, tuple(shares[:2]), WordOrder.ABCD)
    exported = decode_value(DataType.FLOAT32, tuple(shares[2:]), WordOrder.ABCD)
    output = sections["inverter"]["ac_power_w"]
    assert isinstance(output, float)
    assert imported == pytest.approx(max(-output, 0.0), rel=1e-6)
    assert exported == pytest.approx(max(output, 0.0), rel=1e-6)
    assert list(settings) == [3, 3, 1]  # protocol n.8.1, 9600 bit/s, address 1


def test_the_site_is_served_by_ems_sim_with_its_sub_meters_out_of_the_totals() -> None:
    assert site_layout("meters") is LAYOUT
    text = HEAD + config_lines(LAYOUT, host="127.0.0.1", port=5020)
    assert text.count("total = false") == 2
    config = parse_config(text, base_dir=Path("/tmp"))
    assert [(d.name, d.role.value, d.total) for d in config.devices] == [
        ("grid_meter", "grid", True),  # the role's only counted device
        ("house_meter", "grid", False),
        ("inverter_meter", "grid", False),
    ]
