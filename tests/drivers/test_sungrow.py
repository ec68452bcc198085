"""Sungrow SH hybrids: the document's own examples decoded, and the simulated SH read over Modbus.

The hex words are typed from "Communication Protocol of Residential Hybrid
Inverter" V1.1.11, chapter 4 "Examples" and Table 3, not produced by our encoder.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.device import Device
from drivers.errors import ExceptionCode, ExceptionResponse
from drivers.planner import ReadRequest
from drivers.profile import RegisterImage, decode_map
from drivers.profiles.identify import SIGNATURES, identify
from drivers.profiles.sungrow import SUNGROW_SH
from drivers.registers import DataType, RegisterType
from drivers.transports import open_transport
from simulation.default_site import DEFAULT_LAYOUT
from simulation.layout import encode_layout
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from simulation.sungrow_site import INVERTER_UNIT, LAYOUT
from tests.support.modbus import plant_specs, served_bus, within_step

IR, H = RegisterType.INPUT, RegisterType.HOLDING
NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)
EVENING = datetime(2026, 6, 21, 19, tzinfo=UTC)


# V1.1.11 1.2 item 4: "unavailable" is 0xFFFF (U16, U32), 0x7FFF (S16), 0x7FFFFFFF (S32,
# low word first: 0xFFFF then 0x7FFF).
_UNAVAILABLE = {
    DataType.UINT16: (0xFFFF,),
    DataType.INT16: (0x7FFF,),
    DataType.UINT32: (0xFFFF, 0xFFFF),
    DataType.INT32: (0xFFFF, 0x7FFF),
}


def _unavailable_image(**typed: tuple[int, ...]) -> RegisterImage:
    """Every register the poll reads as "unavailable", then the typed words.

    ``typed`` maps ``r<register number>`` (the document's numbering) to words.
    """
    table = {
        request.address + i: 0xFFFF for request in SUNGROW_SH.plan for i in range(request.count)
    }
    for point in SUNGROW_SH.points:
        for i, word in enumerate(_UNAVAILABLE[point.data_type]):
            table[point.address + i] = word
    for key, words in typed.items():
        register = int(key.removeprefix("r"))
        for i, word in enumerate(words):
            table[register - 1 + i] = word  # register N is PDU address N - 1
    return {IR: table}


def test_example_4_2_running_information() -> None:
    # 4.2: "01 04 13 87 00 0A" answers 0E28 00FA 0001 035C 2BF6 000B 0000 0000 01A9 0000
    # for registers 5000-5009: total output energy 73215.0 kWh, inside temperature 42.5 degC.
    words = (0x0E28, 0x00FA, 0x0001, 0x035C, 0x2BF6, 0x000B, 0x0000, 0x0000, 0x01A9, 0x0000)
    sections = decode_map(SUNGROW_SH, _unavailable_image(r5000=words))
    assert sections["inverter"] == {"energy_total_wh": 73_215_000.0, "temperature_c": 42.5}
    # Every other register read 0xFFFF / 0x7FFF: absent, not 65535.
    assert set(sections) == {"inverter"}


def test_example_4_8_running_state_and_power_flow() -> None:
    # 4.8: registers 13000-13001 answer 0x4000 (external EMS mode) and 0x000D (PV,
    # battery discharging, load). Battery: 53.0 V, 28.3 A, 1500 W, as magnitudes.
    image = _unavailable_image(
        r13000=(0x4000, 0x000D),
        r13020=(0x0212, 0x011B, 0x05DC, 0x01F4, 0x03D4, 0x00D2),
    )
    sections = decode_map(SUNGROW_SH, image)
    assert sections["inverter"] == {"state": "external_ems"}
    assert sections["battery"] == {
        "voltage_v": 53.0,
        "current_a": 28.3,
        "power_w": 1500.0,
        "soc_pct": 50.0,  # 13023: 0x01F4 = 500 x 0.1 %
        "soh_pct": 98.0,  # 13024: 0x03D4 = 980
        "temperature_c": 21.0,  # 13025: 0x00D2 = 210 x 0.1 degC
        "state": "discharging",
    }
    assert sections["extra"] == {"power_flow_status": 13.0}


@pytest.mark.parametrize(
    ("power_word", "current_word"),
    [
        (0x05DC, 0x011B),  # V1.0.23: U16 magnitudes, 1500 W and 28.3 A
        (0xFA24, 0xFEE5),  # firmware sending them signed: -1500 W and -28.3 A
    ],
)
def test_charging_takes_its_sign_from_the_power_flow(power_word: int, current_word: int) -> None:
    # Appendix 3: 0x0013 = bit 0 PV, bit 1 battery charging, bit 4 feed-in.
    image = _unavailable_image(r13001=(0x0013,), r13021=(current_word, power_word))
    battery = decode_map(SUNGROW_SH, image)["battery"]
    assert battery == {"current_a": -28.3, "power_w": -1500.0, "state": "charging"}


def test_export_power_sign_and_unavailable_meter() -> None:
    # 13010-13011 "Export power", S32 low word first, > 0 to the grid.
    exporting = _unavailable_image(r13010=(0x0441, 0x0000))  # 1089 W out
    assert decode_map(SUNGROW_SH, exporting)["grid"] == {"power_w": -1089.0}
    importing = _unavailable_image(r13010=(0xFBBF, 0xFFFF))  # -1089: importing
    assert decode_map(SUNGROW_SH, importing)["grid"] == {"power_w": 1089.0}
    # No meter: the S32 reads 0x7FFFFFFF (low word 0xFFFF first), "unavailable".
    no_meter = _unavailable_image(r13010=(0xFFFF, 0x7FFF))
    assert "grid" not in decode_map(SUNGROW_SH, no_meter)


def test_counters_are_low_word_first_in_wh() -> None:
    # 13037-13038 total import 0x0001 0x86A0 -> 0x000186A0 would be ABCD; CDAB is
    # 0x86A0 then 0x0001: 100000 x 0.1 kWh = 10000 kWh.
    image = _unavailable_image(r13037=(0x86A0, 0x0001), r13046=(0x0457, 0x0000))
    grid = decode_map(SUNGROW_SH, image)["grid"]
    assert grid == {"import_energy_wh": 10_000_000.0, "export_energy_wh": 111_100.0}


def test_plan_is_three_requests_the_minimum() -> None:
    expected = (
        ReadRequest(IR, 5003, 16),  # registers 5004-5019
        ReadRequest(IR, 5241, 1),  # register 5242
        ReadRequest(IR, 12999, 48),  # registers 13000-13047
    )
    assert SUNGROW_SH.plan == expected
    assert SUNGROW_SH.minimal_plan == expected
    assert all(request.register_type is IR for request in SUNGROW_SH.plan)


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
@pytest.mark.parametrize("start", [NOON, EVENING])
async def test_simulated_sh_reads_the_plant(kind: str, start: datetime) -> None:
    specs, plant = plant_specs(LAYOUT, start)
    server = DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=kind == "rtu")
    async with server, open_transport(served_bus(kind, server)) as transport:
        reading = await Device(transport, unit=INVERTER_UNIT, profile="sungrow_sh").read()
    assert reading.transactions == 3
    got = reading.sections
    battery, grid, inverter = plant["battery"], plant["grid"], plant["inverter"]
    assert within_step(got["battery"]["power_w"], battery["power_w"], 1.0)
    assert within_step(got["battery"]["current_a"], battery["current_a"], 0.1)
    assert within_step(got["battery"]["soc_pct"], battery["soc_pct"], 0.1)
    assert within_step(got["battery"]["voltage_v"], battery["voltage_v"], 0.1)
    assert got["battery"]["state"] == battery["state"]
    assert within_step(got["grid"]["power_w"], grid["power_w"], 1.0)
    assert within_step(got["grid"]["frequency_hz"], grid["frequency_hz"], 0.01)
    assert within_step(got["inverter"]["ac_power_w"], inverter["ac_power_w"], 1.0)
    assert within_step(got["solar"]["pv_power_w"], plant["solar"]["pv_power_w"], 1.0)
    assert within_step(got["extra"]["house_power_w"], plant["extra"]["house_power_w"], 1.0)
    assert got["inverter"]["state"] in {"running", "standby", "stop"}


async def test_evening_discharge_and_noon_charge_have_the_protocol_sign() -> None:
    for start, sign in ((NOON, -1.0), (EVENING, 1.0)):
        specs, plant = plant_specs(LAYOUT, start)
        assert plant["battery"]["power_w"] * sign > 0  # the scenario charges, then discharges
        server = DeviceServer(specs, tcp=("127.0.0.1", 0))
        async with server, open_transport(served_bus("tcp", server)) as transport:
            reading = await Device(transport, unit=INVERTER_UNIT, profile="sungrow_sh").read()
        power = reading.section("battery")["power_w"]
        assert isinstance(power, float)
        assert power * sign > 0


async def test_input_and_holding_tables_and_refusals() -> None:
    specs, _ = plant_specs(LAYOUT, NOON)
    server = DeviceServer(specs, tcp=("127.0.0.1", 0))
    async with server, open_transport(served_bus("tcp", server)) as transport:
        # The same PDU address 4999 is "Device type code" in the input table
        # (SH5K-20: 0x0D09) and "System clock: Year" in the holding table.
        assert await transport.read(IR, 4999, 3, unit=1) == (0x0D09, 50, 0)
        assert await transport.read(H, 4999, 1, unit=1) == (2026,)
        # Reserved registers inside the documented blocks read "unavailable".
        assert await transport.read(IR, 5005, 2, unit=1) == (0xFFFF, 0xFFFF)
        with pytest.raises(ExceptionResponse) as caught:
            await transport.read(IR, 4999, 101, unit=1)  # longer than max_count
        assert caught.value.code is ExceptionCode.ILLEGAL_DATA_VALUE
        assert (await identify(transport, 1)).profile == "sungrow_sh"
        # No other family's signature fits the SH.
        others = [(n, s) for n, s in SIGNATURES if n != "sungrow_sh"]
        assert (await identify(transport, 1, others)).profile is None


async def test_no_other_simulated_device_looks_like_an_sh() -> None:
    sections = Plant("sunny", seed=2, start=NOON).state.sections()
    images = encode_layout(DEFAULT_LAYOUT, sections)
    specs = [DeviceSpec.for_map(d.unit, images[d.unit], d.served) for d in DEFAULT_LAYOUT.devices]
    sungrow_only = [(n, s) for n, s in SIGNATURES if n == "sungrow_sh"]
    server = DeviceServer(specs, tcp=("127.0.0.1", 0))
    async with server, open_transport(served_bus("tcp", server)) as transport:
        for device in DEFAULT_LAYOUT.devices:
            found = await identify(transport, device.unit, sungrow_only)
            assert found.profile in {None, "sunspec"}, device.name
