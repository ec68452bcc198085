"""SMA's Modbus profile: hand-made register images decoded, NaN handling, read plans.

The images follow SMA's documents: big-endian words, 32-bit values high word
first (SMA-Modbus-general-TI-en-10, 3.5.4), FIX2 values in hundredths, FIX3 in
thousandths, TEMP in tenths (3.5.8), and the NaN words of 3.5.7 (S32 0x8000 0000,
U32 0xFFFF FFFF, status 0x00FF FFFD).
"""

from __future__ import annotations

from drivers.bus import BusType
from drivers.profile import RegisterImage, RegisterMap, decode_map
from drivers.profiles import get_profile
from drivers.profiles.sma import SMA_INVERTER, SMA_STORAGE
from drivers.registers import DataType, RegisterType
from tests.support.modbus import words32

NAN_S32 = (0x8000, 0x0000)
NAN_U32 = (0xFFFF, 0xFFFF)
NAN_STATUS = (0x00FF, 0xFFFD)


def _image(words: dict[int, tuple[int, int]], reg_map: RegisterMap) -> RegisterImage:
    """An image where the listed addresses hold ``words`` and every other point its NaN."""
    table: dict[int, int] = {}
    for point in reg_map.points:
        nan = NAN_S32 if point.data_type is DataType.INT32 else NAN_U32
        table[point.address], table[point.address + 1] = words.get(point.address, nan)
    return {RegisterType.INPUT: table}


def test_a_tripower_at_noon() -> None:
    # Sunny Tripower 8.0 delivering 7,250 W: condition 307 "Ok", 230.12/231.05/229.87 V,
    # 50.01 Hz, 41.3 degC inside, two DC inputs, 12.345678 MWh total, 21.5 kWh today;
    # the Energy Meter sees 2,000 W fed in, 0 drawn.
    words = {
        30201: words32(307),
        30529: words32(12_345_678),
        30535: words32(21_500),
        30581: words32(1_200_000),
        30583: words32(9_800_000),
        30769: words32(10_512),  # FIX3: 10.512 A
        30771: words32(41_250),  # FIX2: 412.50 V
        30773: words32(4_336),
        30775: words32(7_250),
        30777: words32(2_417),
        30779: words32(2_416),
        30781: words32(2_417),
        30783: words32(23_012),
        30785: words32(23_105),
        30787: words32(22_987),
        30803: words32(5_001),
        30865: words32(0),
        30867: words32(2_000),
        30953: words32(413),  # TEMP: 41.3 degC
        30957: words32(8_004),
        30959: words32(38_790),
        30961: words32(3_105),
    }
    sections = decode_map(SMA_INVERTER, _image(words, SMA_INVERTER))
    assert sections["inverter"] == {
        "state": "ok",
        "energy_total_wh": 12_345_678.0,
        "ac_power_w": 7_250.0,
        "ac_voltage_v": 230.12,
        "ac_frequency_hz": 50.01,
        "temperature_c": 41.3,
        "dc_power_w": 7_441.0,
    }
    assert sections["solar"] == {
        "energy_today_wh": 21_500.0,
        "pv_power_w": 7_441.0,
        "pv_current_a": 18.516,
        "pv_voltage_v": 412.5,
    }
    # Drawn 0 W less fed 2,000 W: exporting.
    assert sections["grid"] == {
        "import_energy_wh": 1_200_000.0,
        "export_energy_wh": 9_800_000.0,
        "power_w": -2_000.0,
    }
    assert sections["extra"]["inverter_ac_voltage_l3_v"] == 229.87
    assert sections["extra"]["pv2_voltage_v"] == 387.9


def test_an_inverter_at_night_gives_nan_and_reads_off_with_no_power() -> None:
    # Condition 303 "Off"; power, DC inputs, the missing meter and the rest NaN (TI 3.5.7).
    words = {
        30201: words32(303),
        30529: words32(12_345_678),
    }
    sections = decode_map(SMA_INVERTER, _image(words, SMA_INVERTER))
    assert sections["inverter"] == {
        "state": "off",
        "energy_total_wh": 12_345_678.0,
        "ac_power_w": 0.0,
    }
    assert sections["solar"] == {"pv_power_w": 0.0}
    assert "grid" not in sections  # no Energy Meter: nothing about the grid


def test_a_status_nan_is_no_state_and_nan_power_while_ok_is_no_power() -> None:
    words = {30201: NAN_STATUS, 30775: NAN_S32}
    sections = decode_map(SMA_INVERTER, _image(words, SMA_INVERTER))
    assert "inverter" not in sections  # no state, and no power claimed without "Off"


def test_a_sunny_island_discharging() -> None:
    # Discharging 1,500 W at 51.20 V: 30843 says 29.297 A (its sign undocumented: here
    # negative), SoC 67 %, 25.3 degC, status 2293 "Discharge battery"; the AC side
    # delivers 1,430 W, the meter sees 250 W drawn.
    words = {
        30201: words32(307),
        30581: words32(3_000_000),
        30583: words32(4_000_000),
        30595: words32(2_500_000),
        30597: words32(2_100_000),
        30775: words32(1_430),
        30783: words32(23_140),
        30785: words32(23_140),
        30787: words32(23_140),
        30803: words32(4_998),
        30843: words32(-29_297),
        30845: words32(67),
        30849: words32(253),
        30851: words32(5_120),
        30865: words32(250),
        30867: words32(0),
        30955: words32(2293),
        31393: words32(0),
        31395: words32(1_500),
    }
    sections = decode_map(SMA_STORAGE, _image(words, SMA_STORAGE))
    assert sections["battery"] == {
        "soc_pct": 67.0,
        "temperature_c": 25.3,
        "voltage_v": 51.2,
        "state": "discharging",
        "power_w": 1_500.0,
        "current_a": 29.297,
    }
    assert sections["grid"] == {
        "import_energy_wh": 3_000_000.0,
        "export_energy_wh": 4_000_000.0,
        "power_w": 250.0,
    }
    assert sections["inverter"]["ac_power_w"] == 1_430.0
    assert sections["inverter"]["ac_frequency_hz"] == 49.98
    assert "battery_current_a" not in sections["extra"]  # only its size was used


def test_a_sunny_island_charging_and_an_unknown_status() -> None:
    words = {
        30201: words32(307),
        30843: words32(12_000),
        30845: words32(40),
        30955: NAN_STATUS,
        31393: words32(600),
        31395: words32(0),
    }
    battery = decode_map(SMA_STORAGE, _image(words, SMA_STORAGE))["battery"]
    assert battery == {"soc_pct": 40.0, "power_w": -600.0, "current_a": -12.0}


def test_read_plans_are_the_fewest_requests_the_limits_allow() -> None:
    # Four blocks (30201; 30529-30584; 30769-30868; 30953-30962) and five
    # (30201; 30581-30598; 30775-30868; 30955; 31393-31396): gaps inside a block
    # read as NaN (TI 3.5.5), no request exceeds 125 registers.
    assert len(SMA_INVERTER.plan) == len(SMA_INVERTER.minimal_plan) == 4
    assert len(SMA_STORAGE.plan) == len(SMA_STORAGE.minimal_plan) == 5
    for request in SMA_INVERTER.plan + SMA_STORAGE.plan:
        assert request.count <= 125
        assert request.register_type is RegisterType.INPUT


def test_catalogue_entries() -> None:
    for name in ("sma_inverter", "sma_storage"):
        profile = get_profile(name)
        assert profile.default_unit == 3
        assert profile.transports == frozenset({BusType.TCP})
        assert profile.signature is not None
    assert get_profile("sma_inverter").sections == ("inverter", "solar", "grid", "extra")
    assert get_profile("sma_storage").sections == ("inverter", "grid", "extra", "battery")
