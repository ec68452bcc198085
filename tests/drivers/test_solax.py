"""SolaX X1/X3 hybrids: images typed from the V3.21 tables, and the simulated X1 over Modbus.

The hex words are typed from "Energy Storage Inverter Modbus TCP&RTU
Communication protocols" V3.21 (its input register table, "(0x46:LSB,0x47:MSB)"
word order, and its InverterSN example), not produced by our encoder.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from drivers.bus import Backend
from drivers.device import Device
from drivers.planner import ReadRequest
from drivers.profile import RegisterImage, decode_map
from drivers.profiles import get_profile
from drivers.profiles.describe import profile_details
from drivers.profiles.identify import SIGNATURES, identify
from drivers.profiles.solax import SOLAX_X1, SOLAX_X3
from drivers.registers import RegisterType
from drivers.transports import open_transport
from simulation.default_site import DEFAULT_LAYOUT
from simulation.layout import encode_layout
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from simulation.solax_site import INVERTER_UNIT, LAYOUT
from simulation.sungrow_site import LAYOUT as SUNGROW_LAYOUT
from tests.support.modbus import plant_specs, served_bus, within_step

IR, H = RegisterType.INPUT, RegisterType.HOLDING
NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)
EVENING = datetime(2026, 6, 21, 19, tzinfo=UTC)
# The document's example: "read InverterSN(register:0x0000~0x006)" answers
# 48 34 37 35 32 32 5A 48 45 4E 47 57 45 4E, "H47522ZHENGWEN".
EXAMPLE_SN = (0x4834, 0x3735, 0x3232, 0x5A48, 0x454E, 0x4757, 0x454E)


def _image(**typed: tuple[int, ...]) -> RegisterImage:
    """Input registers 0x0000-0x0120 at 0 (reserved words read 0), then the typed words."""
    table = dict.fromkeys(range(0x0121), 0)
    for key, words in typed.items():
        address = int(key.removeprefix("a"), 16)
        for i, word in enumerate(words):
            table[address + i] = word
    return {IR: table}


def test_x1_charging_and_exporting_at_noon() -> None:
    image = _image(
        a0000=(0x08FE, 0x0044, 0x0612),  # 230.2 V, 6.8 A, 1554 W at the AC port
        a0003=(0x03AF, 0x0000, 0x0151, 0x0000),  # PV1 94.3 V / 33.7 A, PV2 idle
        a0007=(0x138A, 0x0015, 0x0002, 0x0C67, 0x0000),  # 50.02 Hz, 21 degC, normal, 3175 W
        # Battery 53.0 V, +28.3 A and +1500 W charging ("Charge1" positive), 21 degC,
        # BDCStatus 1 "charge", SOC 50 %.
        a0014=(0x0212, 0x011B, 0x05DC, 0x0001, 0x0015, 0x0001),
        a001C=(0x0032,),
        # OutputEnergy_Charge 0x001D LSB / 0x001E MSB: 0x000B2BF6 = 732150 x 0.1 kWh.
        a001D=(0x2BF6, 0x000B),
        # feedin_power 0x0046 LSB / 0x0047 MSB: +1089 W to the grid; meter counters
        # 0x0048/0x0049 export 0x000186A0 = 100000 x 0.01 kWh, import 1234.56 kWh.
        a0046=(0x0441, 0x0000, 0x86A0, 0x0001, 0xE240, 0x0001),
        a00BC=(0x0CF5, 0x0CF1, 0x0000, 0x0062),  # cells 3.317 / 3.313 V, SOH 98 %
    )
    sections = decode_map(SOLAX_X1, image)
    assert sections["inverter"] == {
        "ac_voltage_v": 230.2,
        "ac_current_a": 6.8,
        "ac_power_w": 1554.0,
        "temperature_c": 21.0,
        "state": "normal",
        "energy_total_wh": 0.0,
    }
    assert sections["battery"] == {
        "voltage_v": 53.0,
        "current_a": -28.3,
        "power_w": -1500.0,
        "temperature_c": 21.0,
        "state": "charging",
        "soc_pct": 50.0,
        "cell_voltage_max_v": 3.317,
        "cell_voltage_min_v": 3.313,
        "soh_pct": 98.0,
    }
    assert sections["grid"] == {
        "frequency_hz": 50.02,
        "power_w": -1089.0,
        "export_energy_wh": 1_000_000.0,
        "import_energy_wh": 1_234_560.0,
    }
    assert sections["solar"]["pv_power_w"] == 3175.0
    assert sections["solar"]["pv_current_a"] == 33.7
    assert sections["solar"]["pv_voltage_v"] == 94.3
    assert sections["extra"]["battery_discharge_wh"] == 73_215_000.0


def test_x1_discharging_and_importing() -> None:
    image = _image(
        a0015=(0xFF97, 0xFDD5),  # -10.5 A, -555 W: discharging
        a0019=(0x0000,),  # BDCStatus 0 "discharge"
        a0046=(0xFF3C, 0xFFFF),  # feedin_power -196 W: consumed from the grid
    )
    sections = decode_map(SOLAX_X1, image)
    assert sections["battery"]["current_a"] == 10.5
    assert sections["battery"]["power_w"] == 555.0
    assert sections["battery"]["state"] == "discharging"
    assert sections["grid"]["power_w"] == 196.0


def test_x3_reads_its_phases() -> None:
    image = _image(
        # 0x006A.. R: 230.1 V, 2.0 A, 460 W, 50.01 Hz; S and T alike, 231.5 / 229.0 V.
        a006A=(0x08FD, 0x0014, 0x01CC, 0x1389),
        a006E=(0x090B, 0x0014, 0x01CC, 0x1389),
        a0072=(0x08F2, 0x0014, 0x01CC, 0x1389),
        # FeedinPower R/S/T (meter): +500 W, -100 W, -100 W (low word first).
        a0082=(0x01F4, 0x0000, 0xFF9C, 0xFFFF, 0xFF9C, 0xFFFF),
    )
    sections = decode_map(SOLAX_X3, image)
    assert sections["grid"]["phase_voltage_v"] == [230.1, 231.5, 229.0]
    assert sections["grid"]["phase_power_w"] == [-500.0, 100.0, 100.0]
    assert sections["grid"]["frequency_hz"] == 50.01
    assert sections["inverter"]["ac_power_w"] == 1380.0


def test_plan_is_two_requests_the_minimum() -> None:
    expected = (ReadRequest(IR, 0x0000, 84), ReadRequest(IR, 0x0094, 44))
    assert SOLAX_X1.plan == expected
    assert SOLAX_X1.minimal_plan == expected
    assert len(SOLAX_X3.plan) == len(SOLAX_X3.minimal_plan) == 2


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
@pytest.mark.parametrize("start", [NOON, EVENING])
async def test_simulated_x1_reads_the_plant(kind: str, start: datetime) -> None:
    specs, plant = plant_specs(LAYOUT, start)
    server = DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=kind == "rtu")
    async with (
        server,
        open_transport(served_bus(kind, server, rtu_backend=Backend.MINIMALMODBUS)) as transport,
    ):
        reading = await Device(transport, unit=INVERTER_UNIT, profile="solax_x1_hybrid").read()
    assert reading.transactions == 2
    got = reading.sections
    battery, grid, inverter = plant["battery"], plant["grid"], plant["inverter"]
    assert within_step(got["battery"]["power_w"], battery["power_w"], 1.0)
    assert within_step(got["battery"]["current_a"], battery["current_a"], 0.1)
    assert within_step(got["battery"]["soc_pct"], battery["soc_pct"], 1.0)
    assert within_step(got["battery"]["cell_voltage_min_v"], battery["cell_voltage_min_v"], 0.001)
    assert got["battery"]["state"] == battery["state"]
    assert within_step(got["grid"]["power_w"], grid["power_w"], 1.0)
    assert within_step(got["grid"]["frequency_hz"], grid["frequency_hz"], 0.01)
    assert within_step(got["inverter"]["ac_power_w"], inverter["ac_power_w"], 1.0)
    assert within_step(got["solar"]["pv_power_w"], plant["solar"]["pv_power_w"], 1.0)


async def test_requests_are_a_second_apart_as_the_document_asks() -> None:
    specs, _ = plant_specs(LAYOUT, NOON)
    server = DeviceServer(specs, tcp=("127.0.0.1", 0))
    async with server, open_transport(served_bus("tcp", server)) as transport:
        inverter = Device(transport, unit=INVERTER_UNIT, profile="solax_x1_hybrid")
        first = await inverter.read()
        started = time.monotonic()
        second = await inverter.read()
        waited = time.monotonic() - started
    # Two requests per read, 1 s apart; the next read's first request 1 s after the last.
    assert first.transactions == second.transactions == 2
    assert first.duration_s >= 1.0
    assert waited >= 2.0 - 0.05


async def test_identity_and_refusals() -> None:
    specs, _ = plant_specs(LAYOUT, NOON)
    server = DeviceServer(specs, tcp=("127.0.0.1", 0))
    async with server, open_transport(served_bus("tcp", server)) as transport:
        serial = await transport.read(H, 0x0000, 7, unit=1)
        assert bytes(b for w in serial for b in w.to_bytes(2, "big")) == b"H4502AEMS00001"
        # Reserved words inside the table read 0 (wills106 reads across them).
        assert await transport.read(IR, 0x0028, 2, unit=1) == (0, 0)
        found = await identify(transport, 1)
        assert found.profile == "solax_x1_hybrid"
        others = [(n, s) for n, s in SIGNATURES if n != "solax_x1_hybrid"]
        assert (await identify(transport, 1, others)).profile is None


def test_the_documents_serial_fits_the_signature() -> None:
    check = dict(SIGNATURES)["solax_x1_hybrid"].checks[0]
    assert check.accepts(EXAMPLE_SN[:1])  # "H4"


async def test_no_other_simulated_device_looks_like_a_solax() -> None:
    sections = Plant("sunny", seed=2, start=NOON).state.sections()
    solax_only = [(n, s) for n, s in SIGNATURES if n.startswith("solax_")]
    for layout in (DEFAULT_LAYOUT, SUNGROW_LAYOUT):
        images = encode_layout(layout, sections)
        specs = [DeviceSpec.for_map(d.unit, images[d.unit], d.served) for d in layout.devices]
        server = DeviceServer(specs, tcp=("127.0.0.1", 0))
        async with server, open_transport(served_bus("tcp", server)) as transport:
            for device in layout.devices:
                found = await identify(transport, device.unit, solax_only)
                assert found.profile in {None, "sunspec"}, (layout.name, device.name)


def test_the_profiles_keep_the_documents_request_interval() -> None:
    for name in ("solax_x1_hybrid", "solax_x3_hybrid"):
        assert get_profile(name).command_gap_s == 1.0
    assert "at least 1 s between two requests" in profile_details("solax_x1_hybrid")
