"""Deye hybrid maps: register images typed by hand from the tables, and the read plans.

The words below are written from the tables' conventions (holding registers,
0.1 kWh counters low word first, 0.1 degC with the 1000 offset, signed powers),
with the values of the example reading in docs/protocol.md, not produced by our
encoder: a wrong address, word order, offset or sign cannot pass both ways.
"""

from __future__ import annotations

from drivers.planner import ReadRequest
from drivers.profile import decode_map
from drivers.profiles import get_profile
from drivers.profiles.deye import DEYE_SG01LP1, DEYE_SG04LP3
from drivers.registers import RegisterType
from tests.support.modbus import zero_image

H = RegisterType.HOLDING


# SUN-5K-SG01LP1 at noon, charging its battery and exporting.
_LP1_WORDS = {
    0: 0x0003,  # device type: single-phase hybrid
    16: 0xC350,  # rated power, low word: 50000 x 0.1 W = 5000 W
    17: 0x0000,
    59: 0x0002,  # running state: normal
    70: 0x0073,  # day battery charge: 11.5 kWh
    72: 0x3039,  # total battery charge, low word: 12345 x 0.1 kWh
    73: 0x0000,
    78: 0x86A0,  # total grid buy, LOW word ...
    79: 0x1389,  # grid frequency: 50.01 Hz
    80: 0x0001,  # ... and its HIGH word: 0x186A0 = 100000 x 0.1 kWh
    81: 0x1170,  # total grid sell, low word ...
    82: 0x0001,  # ... high word: 0x11170 = 70000 x 0.1 kWh
    90: 0x0564,  # DC transformer: 1380 -> 38.0 degC
    91: 0x0597,  # radiator: 1431 -> 43.1 degC
    96: 0x5678,  # total PV, low word ...
    97: 0x0002,  # ... high word: 0x25678 = 153208 x 0.1 kWh
    108: 0x00EB,  # day PV: 23.5 kWh
    109: 0x0EDD,  # PV1: 380.5 V
    110: 0x0055,  # PV1: 8.5 A
    111: 0x0000,
    112: 0x0000,
    150: 0x0908,  # grid L1: 231.2 V
    154: 0x0901,  # inverter output: 230.5 V
    160: 0x0186,  # grid L1 current: 3.90 A
    164: 0x0546,  # inverter current: 13.50 A
    169: 0xFCAE,  # grid power: -850 W (selling)
    172: 0xFCAE,  # grid CT: -850 W
    175: 0x0C30,  # inverter output: 3120 W
    178: 0x0870,  # load: 2160 W
    182: 0x04D8,  # battery: 1240 -> 24.0 degC
    183: 0x1446,  # battery: 51.90 V
    184: 0x004C,  # SOC 76 %
    186: 0x0CA2,  # PV1: 3234 W
    187: 0x0000,  # PV2: nothing connected
    190: 0xFB50,  # battery power: -1200 W (charging)
    191: 0xF6FA,  # battery current: -23.10 A (charging)
    193: 0x1388,  # inverter frequency: 50.00 Hz
    194: 0x0001,  # grid relay closed
}


def test_single_phase_image() -> None:
    sections = decode_map(DEYE_SG01LP1, zero_image(H, _LP1_WORDS, [(0, 200)]))
    assert sections["inverter"] == {
        "state": "normal",
        "temperature_c": 43.1,
        "ac_voltage_v": 230.5,
        "ac_current_a": 13.5,
        "ac_power_w": 3120.0,
        "ac_frequency_hz": 50.0,
    }
    assert sections["grid"] == {
        "frequency_hz": 50.01,
        "export_energy_wh": 7_000_000.0,
        "voltage_v": 231.2,
        "current_a": 3.9,
        "power_w": -850.0,
        # 78 and 80 joined: 100000 x 0.1 kWh.
        "import_energy_wh": 10_000_000.0,
    }
    assert sections["solar"] == {
        "energy_total_wh": 15_320_800.0,
        "energy_today_wh": 23_500.0,
        "pv_power_w": 3234.0,
        "pv_current_a": 8.5,
        "pv_voltage_v": 380.5,
    }
    assert sections["battery"] == {
        "temperature_c": 24.0,
        "voltage_v": 51.9,
        "soc_pct": 76.0,
        "power_w": -1200.0,
        "current_a": -23.1,
        "state": "charging",
    }
    extra = sections["extra"]
    assert extra["inverter_rated_power_w"] == 5000.0
    assert extra["battery_charge_today_wh"] == 11_500.0
    assert extra["battery_charge_total_wh"] == 1_234_500.0
    assert extra["inverter_dc_temperature_c"] == 38.0
    assert extra["grid_ct_power_w"] == -850.0
    assert extra["load_power_w"] == 2160.0
    assert extra["grid_connected"] == 1.0
    # The import's two words are joined, not reported.
    assert not any(name.startswith("deye_grid_import") for name in extra)


def test_discharging_at_night_and_a_cold_battery() -> None:
    words = dict(_LP1_WORDS)
    words.update(
        {
            59: 0x0000,  # standby
            109: 0,
            110: 0,
            186: 0,
            169: 0x0190,  # buying 400 W
            182: 0x03D4,  # 980 -> -2.0 degC
            190: 0x03E8,  # +1000 W: discharging
            191: 0x07A3,  # +19.55 A
        }
    )
    sections = decode_map(DEYE_SG01LP1, zero_image(H, words, [(0, 200)]))
    assert sections["inverter"]["state"] == "standby"
    assert sections["grid"]["power_w"] == 400.0
    assert sections["solar"]["pv_power_w"] == 0.0
    assert sections["battery"]["temperature_c"] == -2.0
    assert sections["battery"]["power_w"] == 1000.0
    assert sections["battery"]["current_a"] == 19.55
    assert sections["battery"]["state"] == "discharging"


# SUN-10K-SG04LP3: the 500+ table.
_LP3_WORDS = {
    0: 0x0005,
    20: 0x86A0,  # rated power, low word ...
    21: 0x0001,  # ... high: 100000 x 0.1 W = 10 kW
    500: 0x0002,  # normal
    522: 0x3A98,  # total grid buy, low word: 15000 x 0.1 kWh
    523: 0x0000,
    524: 0x5654,  # total grid sell, low ...
    525: 0x0000,  # 22100 x 0.1 kWh
    529: 0x0069,  # day PV: 10.5 kWh
    534: 0x3C8C,  # total PV, low: 15500 ...
    535: 0x0001,  # ... high: 0x13C8C = 81036 x 0.1 kWh
    541: 0x0573,  # radiator: 1395 -> 39.5 degC
    586: 0x04E2,  # battery: 1250 -> 25.0 degC
    587: 0x1432,  # 51.70 V
    588: 0x0037,  # 55 %
    590: 0x0898,  # +2200 W: discharging
    591: 0x1099,  # +42.49 A
    598: 0x0908,  # L1 231.2 V
    599: 0x090B,  # L2 231.5 V
    600: 0x08FB,  # L3 229.9 V
    609: 0x1389,  # 50.01 Hz
    622: 0xFED4,  # L1 -300 W
    623: 0xFF06,  # L2 -250 W
    624: 0xFED4,  # L3 -300 W
    625: 0xFCAE,  # -850 W
    627: 0x0908,
    636: 0x1194,  # inverter 4500 W
    638: 0x1389,
    653: 0x0DAC,  # load 3500 W
    672: 0x0B54,  # PV1 2900 W
    673: 0x0000,
    676: 0x0F34,  # PV1 389.2 V
    677: 0x004A,  # PV1 7.4 A
}


def test_three_phase_image() -> None:
    sections = decode_map(DEYE_SG04LP3, zero_image(H, _LP3_WORDS, [(0, 709)]))
    grid = sections["grid"]
    assert grid["phase_voltage_v"] == [231.2, 231.5, 229.9]
    assert grid["phase_power_w"] == [-300.0, -250.0, -300.0]
    assert grid["power_w"] == -850.0
    assert grid["voltage_v"] == 230.87  # derived: the phases' mean
    assert grid["import_energy_wh"] == 1_500_000.0
    assert grid["export_energy_wh"] == 2_210_000.0
    assert grid["frequency_hz"] == 50.01
    assert sections["inverter"]["ac_power_w"] == 4500.0
    assert sections["inverter"]["temperature_c"] == 39.5
    assert sections["inverter"]["state"] == "normal"
    assert sections["solar"]["energy_total_wh"] == 8_103_600.0
    assert sections["solar"]["pv_power_w"] == 2900.0
    assert sections["solar"]["pv_voltage_v"] == 389.2
    assert sections["battery"] == {
        "temperature_c": 25.0,
        "voltage_v": 51.7,
        "soc_pct": 55.0,
        "power_w": 2200.0,
        "current_a": 42.49,
        "state": "discharging",
    }
    assert sections["extra"]["inverter_rated_power_w"] == 10_000.0


def test_read_plans() -> None:
    # Single-phase: rated power, 59-112 (state, counters, temperatures, PV inputs)
    # and 150-194 (AC side and battery); the 125-register limit allows two.
    assert DEYE_SG01LP1.plan == (
        ReadRequest(H, 16, 2),
        ReadRequest(H, 59, 54),
        ReadRequest(H, 150, 45),
    )
    assert len(DEYE_SG01LP1.minimal_plan) == 2
    assert DEYE_SG04LP3.plan == (
        ReadRequest(H, 20, 2),
        ReadRequest(H, 500, 42),
        ReadRequest(H, 586, 68),
        ReadRequest(H, 672, 8),
    )
    assert len(DEYE_SG04LP3.minimal_plan) == 3
    for reg_map in (DEYE_SG01LP1, DEYE_SG04LP3):
        assert reg_map.max_count == 125
        assert reg_map.holes == ()


def test_catalogue_entries() -> None:
    for name in ("deye_sg01lp1", "deye_sg04lp3"):
        profile = get_profile(name)
        assert profile.vendor == "Deye"
        assert profile.default_unit == 1
        assert profile.sections == ("extra", "inverter", "grid", "solar", "battery")
        assert profile.signature is not None
