"""SolarEdge: the fixed map decoding images typed from the technical notes, and its plan.

The words below are written from SolarEdge's "SunSpec Logging in SolarEdge
Inverters" v3.2 (addresses, the scale-factor example "2071 and -2 = 20.71") and
"Power Control Protocol" v1.3 (battery 1 at 0xE100, float32 low word first as
Appendix A of the SunSpec note says), not produced by our encoder.
"""

from __future__ import annotations

from drivers.planner import Hole
from drivers.profile import RegisterImage, decode_map
from drivers.profiles import get_profile
from drivers.profiles.solaredge import SOLAREDGE
from drivers.registers import RegisterType
from tests.support.modbus import text_words

H = RegisterType.HOLDING


def _image() -> RegisterImage:
    words: dict[int, int] = {}

    def put(address: int, *values: int) -> None:
        for i, value in enumerate(values):
            words[address + i] = value

    put(40000, 0x5375, 0x6E53)  # "SunS"
    put(40002, 1, 65)  # common model, 65 registers
    put(40004, *text_words("SolarEdge", 16))
    put(40069, 103, 50)  # three phase inverter, 50 registers
    put(40071, 2071, 690, 690, 691, 0xFFFE)  # I_AC_Current 2071, SF -2: 20.71 A
    put(40079, 2312, 2305, 2320, 0xFFFF)  # I_AC_VoltageAN 231.2 V (SF -1)
    put(40083, 14000, 0)  # I_AC_Power 14000 W, SF 0
    put(40085, 5001, 0xFFFE)  # I_AC_Frequency 50.01 Hz
    put(40093, 0x0089, 0x5440, 0)  # I_AC_Energy_WH 0x00895440 = 9_000_000 Wh, SF 0
    put(40096, 2150, 0xFFFE)  # I_DC_Current 21.50 A
    put(40098, 7200, 0xFFFF)  # I_DC_Voltage 720.0 V
    put(40100, 15400, 0)  # I_DC_Power 15400 W
    put(40102, 0x8000, 412, 0x8000, 0x8000, 0xFFFF)  # I_Temp_Sink 41.2 degC (cabinet n/a)
    put(40107, 4, 0)  # I_Status 4: MPPT ("producing power")
    put(40121, 1, 65)  # meter 1: common block
    put(40188, 203, 105)  # wye three phase meter
    put(40190, 1850, 620, 610, 620, 0xFFFE)  # M_AC_Current 18.50 A
    put(40195, 2301, 2300, 2302, 2301, 0x8000, 0x8000, 0x8000, 0x8000, 0xFFFF)  # volts, SF -1
    put(40204, 5000, 0xFFFE)  # M_AC_Freq 50.00 Hz
    # M_AC_Power +4200 W: the meter counts export positive; phases 1400 each.
    put(40206, 4200, 1400, 1400, 1400, 0)
    put(40221, 0xFF9D, 0xFF9D, 0xFF9D, 0xFF9D, 0)  # M_AC_PF -99 %
    put(40226, 0x0010, 0x0000)  # M_Exported 0x00100000 = 1_048_576 Wh
    put(40234, 0x0002, 0x0000)  # M_Imported 0x00020000 = 131_072 Wh
    put(40242, 0)  # M_Energy_W_SF 0
    put(40295, 0xFFFF, 0)  # end of the SunSpec chain
    # Battery 1, float32 and uint32 with the low word first (0xE100 + offset).
    put(0xE142, 0x0000, 0x461C)  # Rated Energy 0x461C0000 = 9984.0 Wh
    put(0xE16C, 0x0000, 0x41D4)  # Average Temperature 0x41D40000 = 26.5 degC
    put(0xE170, 0x0000, 0x43C8)  # Instantaneous Voltage 0x43C80000 = 400.0 V
    put(0xE172, 0x0000, 0x40E0)  # Instantaneous Current 0x40E00000 = 7.0 A (charging)
    put(0xE174, 0xC000, 0x45AF)  # Instantaneous Power 0x45AFC000 = 5624.0 W (charging)
    put(0xE176, 0xD687, 0x0012, 0, 0)  # Lifetime Export 0x12D687 = 1_234_567 Wh
    put(0xE17A, 0x4E20, 0x0000, 0, 0)  # Lifetime Import 0x4E20 = 20_000 Wh
    put(0xE17E, 0xFFFF, 0xFF7F)  # Max Energy 0xFF7FFFFF: -float32 max, not given
    put(0xE182, 0x0000, 0x42C8)  # SOH 0x42C80000 = 100.0
    put(0xE184, 0x0000, 0x425E)  # SOE 0x425E0000 = 55.5
    put(0xE186, 0x0003, 0x0000)  # Status 3: Charge
    image: RegisterImage = {H: words}
    for point in SOLAREDGE.needed:  # registers not typed above read as SunSpec "n/a"
        for i in range(point.count):
            words.setdefault(point.address + i, 0)
    return image


def test_the_notes_values_decode_to_protocol_signs() -> None:
    sections = decode_map(SOLAREDGE, _image())
    inverter = sections["inverter"]
    assert inverter["ac_current_a"] == 20.71  # the note's own example: 2071 x 10^-2
    assert inverter["ac_voltage_v"] == 231.2
    assert inverter["ac_power_w"] == 14000.0
    assert inverter["ac_frequency_hz"] == 50.01
    assert inverter["energy_total_wh"] == 9_000_000.0
    assert inverter["dc_power_w"] == 15400.0
    assert inverter["temperature_c"] == 41.2  # the heat sink's: the cabinet's is n/a
    assert inverter["state"] == "mppt"
    grid = sections["grid"]
    assert grid["power_w"] == -4200.0  # exporting: the protocol's sign
    assert grid["phase_power_w"] == [-1400.0, -1400.0, -1400.0]
    assert grid["export_energy_wh"] == 1_048_576.0
    assert grid["import_energy_wh"] == 131_072.0
    assert grid["current_a"] == 18.5
    assert grid["voltage_v"] == 230.1
    assert grid["frequency_hz"] == 50.0
    assert grid["power_factor"] == -0.99
    battery = sections["battery"]
    assert battery == {
        "temperature_c": 26.5,
        "voltage_v": 400.0,
        "current_a": -7.0,  # charging: < 0 in the protocol
        "power_w": -5624.0,
        "soh_pct": 100.0,
        "soc_pct": 55.5,
        "state": "charging",
    }
    extra = sections["extra"]
    assert extra["battery_rated_wh"] == 9984.0
    assert extra["battery_discharge_energy_wh"] == 1_234_567.0
    assert extra["battery_charge_energy_wh"] == 20_000.0
    assert "battery_max_energy_wh" not in extra  # -float32 max: not given
    assert extra["inverter_dc_current_a"] == 21.5
    # PV = DC input + what the battery takes: 15400 + 5624.
    assert sections["solar"] == {"pv_power_w": 21024.0}


def test_a_battery_that_is_not_there_leaves_the_battery_section_out() -> None:
    image = _image()
    for address in range(0xE142, 0xE188, 2):
        image[H][address], image[H][address + 1] = 0x0000, 0x7FC0  # NaN, low word first
    image[H][0xE186], image[H][0xE187] = 0xFFFF, 0xFFFF  # uint32 n/a
    for address in (0xE176, 0xE17A):
        image[H][address] = image[H][address + 1] = 0  # a uint32 0 is a count, still read
    sections = decode_map(SOLAREDGE, image)
    assert "battery" not in sections
    assert sections["solar"] == {"pv_power_w": 15400.0}  # no battery: PV is the DC input


def test_plan_reads_inverter_meter_and_battery_in_three_requests() -> None:
    spans = [(r.address, r.count) for r in SOLAREDGE.plan]
    assert spans == [(40071, 37), (40190, 53), (0xE142, 70)]
    assert len(SOLAREDGE.minimal_plan) == 3
    assert all(r.count <= 125 for r in SOLAREDGE.plan)
    # Meters 2 and 3 are refused when not enabled (a site with meter 1 only).
    assert SOLAREDGE.holes == (Hole(H, 40297, 40644),)


def test_the_catalogue_entry_carries_the_quirks() -> None:
    profile = get_profile("solaredge")
    assert profile.single_client
    assert profile.default_unit == 1
    assert profile.sunspec_manufacturer == "SolarEdge"
    assert profile.register_map is SOLAREDGE
    assert any("1502" in note for note in profile.notes)


def test_the_sunspec_chain_sits_where_the_note_puts_it() -> None:
    headers = {p.address: p.constant for p in SOLAREDGE.points if p.name.endswith((".ID", ".L"))}
    assert headers == {
        40002: 1,
        40003: 65,
        40069: 103,
        40070: 50,
        40121: 1,
        40122: 65,
        40188: 203,
        40189: 105,
        40295: 0xFFFF,
        40296: 0,
    }
