"""GoodWe ET/EH maps: a hand-typed image from the protocol's tables, and real Modbus reads.

The image is typed as the ARM205 protocol lays the registers out (holding
registers, 32-bit values high word first, 0.1 V / 0.1 A / 0.01 Hz / W / 0.1 kWh),
with GoodWe's own signs: meter power > 0 exporting, battery power > 0 discharging.
The round trips serve the ``goodwe`` site's inverter at unit 247 over TCP and RTU.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.device import Device
from drivers.errors import ExceptionCode, ExceptionResponse
from drivers.planner import ReadRequest
from drivers.profile import decode_map
from drivers.profiles import get_profile
from drivers.profiles.goodwe import ET, ET_SERVED
from drivers.profiles.identify import identify
from drivers.registers import DataType, RegisterType, WordOrder, encode_value
from drivers.transports import open_transport
from simulation.goodwe_site import LAYOUT
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from tests.drivers.precision import mismatches
from tests.support.modbus import s16, served_bus, zero_image

HOLDING = RegisterType.HOLDING
NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)
UNIT = 247


# The blocks the ET map reads (running data, meter, BMS); zero where not typed.
ET_TABLES = ((35100, 35224), (36000, 36044), (37000, 37023))


def test_a_hand_typed_et_image_decodes_with_protocol_signs() -> None:
    sections = decode_map(
        ET,
        zero_image(
            HOLDING,
            {
                35103: 3521,  # Vpv1 352.1 V
                35104: 62,  # Ipv1 6.2 A
                35105: 0x0000,
                35106: 2183,  # Ppv1 2183 W
                35109: 0x0000,
                35110: 1040,  # Ppv2 1040 W
                35121: 2334,  # Vgrid L1 233.4 V
                35122: 71,  # 7.1 A
                35123: 4999,  # 49.99 Hz
                35138: s16(-1200),  # Total Power: the inverter draws 1200 W
                35176: 387,  # radiator 38.7 degC
                35180: 4982,  # Vbattery1 498.2 V (an HV battery)
                35181: s16(-95),  # Ibattery1 -9.5 A: charging
                35182: 0xFFFF,
                35183: s16(-4733),  # Pbattery1 -4733 W: charging
                35184: 3,  # Battery Mode "Charge"
                35187: 1,  # Work Mode "Normal (On-Grid)"
                35191: 0x0001,
                35192: 0x2345,  # PV_E_Total 0x12345 x 0.1 kWh
                35195: 0x0000,
                35196: 1500,  # E_Total_Exp 150.0 kWh
                35200: 0x0000,
                35201: 250,  # E_Total_Imp 25.0 kWh
                36014: 5001,  # meter 50.01 Hz
                36019: 0xFFFF,
                36020: s16(-800),  # L1 -800 W: importing 800 W
                36021: 0x0000,
                36022: 100,  # L2 exporting 100 W
                36023: 0x0000,
                36024: 0,
                36025: 0xFFFF,
                36026: s16(-700),  # total -700 W: importing 700 W
                37003: 215,  # 21.5 degC
                37007: 76,  # SOC
                37008: 99,  # SOH
                37022: 3412,  # 3.412 V
                37023: 3398,
            },
            ET_TABLES,
        ),
    )
    assert sections["inverter"] == {
        "ac_voltage_v": 233.4,
        "ac_current_a": 7.1,
        "ac_frequency_hz": 49.99,
        "ac_power_w": -1200.0,
        "temperature_c": 38.7,
        "state": "on_grid",
    }
    assert sections["grid"]["power_w"] == 700.0
    assert sections["grid"]["phase_power_w"] == [800.0, -100.0, 0.0]
    assert sections["grid"]["frequency_hz"] == 50.01
    assert sections["grid"]["export_energy_wh"] == 150_000.0
    assert sections["grid"]["import_energy_wh"] == 25_000.0
    assert sections["battery"] == {
        "voltage_v": 498.2,
        "current_a": -9.5,
        "power_w": -4733.0,
        "state": "charging",
        "temperature_c": 21.5,
        "soc_pct": 76.0,
        "soh_pct": 99.0,
        "cell_voltage_max_v": 3.412,
        "cell_voltage_min_v": 3.398,
    }
    assert sections["solar"]["pv_power_w"] == 3223.0  # Ppv1 + Ppv2
    assert sections["solar"]["energy_total_wh"] == 7_456_500.0


def test_a_poll_is_the_running_meter_and_bms_blocks() -> None:
    assert ET.plan == (
        ReadRequest(HOLDING, 35103, 108),
        ReadRequest(HOLDING, 36014, 13),
        ReadRequest(HOLDING, 37003, 21),
    )
    assert ET.plan == ET.minimal_plan
    assert get_profile("goodwe_et").default_unit == UNIT


def _served() -> tuple[DeviceSpec, dict[str, dict[str, object]]]:
    plant = Plant("sunny", seed=6, start=NOON).state.sections()
    (device,) = LAYOUT.devices
    return DeviceSpec.for_map(UNIT, device.encode(plant), ET_SERVED), device.measures(plant)


@pytest.mark.parametrize("kind", ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"])
async def test_the_et_reads_over_the_wire_at_unit_247(kind: str) -> None:
    spec, shown = _served()
    async with (
        DeviceServer([spec], tcp=("127.0.0.1", 0), rtu=True) as server,
        open_transport(served_bus(kind, server)) as transport,
    ):
        reading = await Device(transport, unit=UNIT, profile="goodwe_et").read()
        model = await transport.read(HOLDING, 35011, 5, unit=UNIT)
    assert reading.transactions == 3
    assert mismatches(ET, shown, reading.sections) == []
    assert model == encode_value(DataType.STRING, "GW5K-ET", WordOrder.ABCD, 5)
    # PV power is the sum of the strings' whole watts.
    got, want = reading.section("solar")["pv_power_w"], shown["solar"]["pv_power_w"]
    assert isinstance(got, float)
    assert isinstance(want, float)
    assert abs(got - want) <= 0.5


@pytest.mark.parametrize("kind", ["tcp", "rtu-minimalmodbus"])
async def test_longer_meter_reads_are_refused_as_by_older_firmware(kind: str) -> None:
    spec, _ = _served()
    async with (
        DeviceServer([spec], tcp=("127.0.0.1", 0), rtu=True) as server,
        open_transport(served_bus(kind, server)) as transport,
    ):
        assert len(await transport.read(HOLDING, 36000, 45, unit=UNIT)) == 45
        assert len(await transport.read(HOLDING, 35100, 125, unit=UNIT)) == 125
        with pytest.raises(ExceptionResponse) as caught:
            await transport.read(HOLDING, 36000, 58, unit=UNIT)
        assert caught.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS


async def test_the_et_is_told_by_its_model_name() -> None:
    spec, _ = _served()
    async with (
        DeviceServer([spec], tcp=("127.0.0.1", 0)) as server,
        open_transport(served_bus("tcp", server)) as transport,
    ):
        identity = await identify(transport, UNIT)
    assert identity.profile == "goodwe_et"
