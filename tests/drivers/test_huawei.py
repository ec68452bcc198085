"""Huawei SUN2000 maps: register images typed from the document's tables, plans, quirks.

The images give each value as the tables define it (address, type, gain, sign):
the meter reporting 1.5 kW "supply from the power grid" as -1500 W, the storage
"charging" at +2000 W, kWh counters at gain 100, 32-bit values high word first.
"""

from __future__ import annotations

import pytest

from drivers.bus import BusType
from drivers.profile import RegisterImage, decode_map
from drivers.profiles import get_profile
from drivers.profiles.device_profile import Check
from drivers.profiles.huawei import HOLES, L1, L1_LUNA, M_LUNA, SETTLE_S, M
from drivers.registers import DataType, RegisterType
from tests.support.modbus import words32

H = RegisterType.HOLDING


def _image(words: dict[int, int | tuple[int, int]]) -> RegisterImage:
    table: dict[int, int] = {}
    for address, value in words.items():
        if isinstance(value, tuple):
            table[address], table[address + 1] = value
        else:
            table[address] = value
    for request in L1_LUNA.plan + M_LUNA.plan:  # what the plan reads, zero elsewhere
        for address in range(request.address, request.end):
            table.setdefault(address, 0)
    return {H: table}


# A sunny hour on an L1 with a LUNA2000 charging and the house exporting.
NOON: dict[int, int | tuple[int, int]] = {
    32016: 3624,  # PV1 voltage, V x 10: 362.4 V
    32017: 912,  # PV1 current, A x 100: 9.12 A
    32018: 3580,
    32019: 455,
    32064: words32(4950),  # Input power, kW x 1000: 4.950 kW
    32066: 2312,  # Power grid voltage, V x 10
    32072: words32(11_250),  # Power grid current, A x 1000: 11.25 A
    32080: words32(2590),  # Active power: 2.590 kW delivered
    32085: 5002,  # Grid frequency, Hz x 100
    32087: 421,  # Internal temperature, degC x 10
    32089: 0x0200,  # Device status: On-grid
    32106: words32(1_234_567),  # Accumulated energy yield, kWh x 100: 12345.67 kWh
    32114: words32(1_875),  # Daily energy yield: 18.75 kWh
    37101: words32(2309),  # Meter phase A voltage, V x 10
    37103: words32(2315),
    37105: words32(2301),
    37107: words32(520),  # Meter phase A current, A x 100
    37109: words32(110),
    37111: words32(95),
    37113: words32(1500),  # "> 0: feed-in to the power grid"
    37117: 987,  # Power factor x 1000
    37118: 5001,
    37119: words32(456_789),  # Positive active electricity (to the grid), kWh x 100
    37121: words32(123_456),  # Reverse active power (from the grid)
    37132: words32(1100),
    37134: words32(250),
    37136: words32(150),
    37760: 653,  # SOC, % x 10
    37762: 2,  # Running status: running
    37763: 4521,  # Bus voltage, V x 10
    37764: 44,  # Bus current, A x 10, charging
    37765: words32(2000),  # "> 0: charging"
    37780: words32(98_765),  # Total charge, kWh x 100
    37782: words32(87_654),
    37784: words32(1_200),
    37786: words32(300),
}


def test_an_l1_with_luna_decodes_with_the_protocol_s_signs() -> None:
    sections = decode_map(L1_LUNA, _image(NOON))
    inverter, grid, battery, solar = (sections[k] for k in ("inverter", "grid", "battery", "solar"))
    assert inverter == {
        "ac_voltage_v": 231.2,
        "ac_current_a": 11.25,
        "dc_power_w": 4950.0,
        "ac_power_w": 2590.0,
        "ac_frequency_hz": 50.02,
        "temperature_c": 42.1,
        "state": "on_grid",
        "energy_total_wh": 12_345_670.0,
    }
    assert solar == {"energy_today_wh": 18_750.0, "pv_power_w": 4950.0}
    # Feeding 1.5 kW in: our grid power is negative (exporting).
    assert grid["power_w"] == -1500.0
    assert grid["phase_power_w"] == [-1100.0, -250.0, -150.0]
    assert grid["export_energy_wh"] == 4_567_890.0
    assert grid["import_energy_wh"] == 1_234_560.0
    assert grid["phase_voltage_v"] == [230.9, 231.5, 230.1]
    assert grid["voltage_v"] == pytest.approx(230.83, abs=0.01)
    assert grid["current_a"] == pytest.approx(7.25)
    assert (grid["power_factor"], grid["frequency_hz"]) == (0.987, 50.01)
    # Charging at 2 kW: our battery power is negative.
    assert battery == {
        "soc_pct": 65.3,
        "state": "running",
        "voltage_v": 452.1,
        "current_a": -4.4,
        "power_w": -2000.0,
    }
    extra = sections["extra"]
    assert (extra["pv1_voltage_v"], extra["pv1_current_a"]) == (362.4, 9.12)
    assert extra["battery_charged_energy_wh"] == 987_650.0
    assert extra["battery_discharged_today_wh"] == 3_000.0


def test_importing_and_discharging_read_positive() -> None:
    night = {
        **NOON,
        32064: words32(-3),  # a few watts drawn at night
        32089: 0xA000,
        37113: words32(-820),  # "< 0: supply from the power grid"
        37765: words32(-1250),  # "< 0: discharging"
        37764: -26 & 0xFFFF,
    }
    sections = decode_map(L1_LUNA, _image(night))
    assert sections["grid"]["power_w"] == 820.0
    assert sections["battery"]["power_w"] == 1250.0
    assert sections["battery"]["current_a"] == 2.6
    assert sections["inverter"]["state"] == "standby_no_irradiation"
    # The input power may dip below 0; the PV power never does.
    assert sections["inverter"]["dc_power_w"] == -3.0
    assert sections["solar"]["pv_power_w"] == 0.0


def test_a_three_phase_m_reads_its_phases_and_adds_the_currents() -> None:
    image = _image(
        {
            **NOON,
            32066: 4005,  # line voltage A-B on an M
            32069: 2312,
            32070: 2308,
            32071: 2299,
            32072: words32(3_750),
            32074: words32(3_760),
            32076: words32(3_740),
        }
    )
    sections = decode_map(M, image)
    assert sections["inverter"]["ac_voltage_v"] == 231.2
    assert sections["inverter"]["ac_current_a"] == 11.25
    assert sections["extra"]["inverter_line_voltage_ab_v"] == 400.5
    assert "battery" not in sections
    assert "battery" not in decode_map(L1, image)


def test_an_unknown_device_status_keeps_its_code() -> None:
    sections = decode_map(L1, _image({**NOON, 32089: 0x0999}))
    assert sections["inverter"]["state"] == "code_2457"


def test_a_poll_is_three_or_four_requests_clear_of_the_holes() -> None:
    def shape(reg_map: object) -> list[tuple[int, int]]:
        return [(r.address, r.count) for r in reg_map.plan]  # type: ignore[attr-defined]

    assert shape(L1) == shape(M) == [(32016, 4), (32064, 52), (37101, 37)]
    assert shape(L1_LUNA) == shape(M_LUNA) == [*shape(L1), (37760, 28)]
    for reg_map in (L1, L1_LUNA, M, M_LUNA):
        assert len(reg_map.minimal_plan) == len(reg_map.plan)
        for request in reg_map.plan:
            assert request.count <= 64
            assert not any(h.touches(H, request.address, request.count) for h in HOLES)


def test_the_profiles_carry_the_inverter_s_quirks() -> None:
    for name in ("huawei_sun2000_l1_luna", "huawei_sun2000_l1", "huawei_sun2000_m_luna"):
        profile = get_profile(name)
        assert profile.settle_s == SETTLE_S >= 1.0
        assert profile.single_client
        assert (profile.default_unit, profile.units) == (1, (0,))
        assert profile.transports == frozenset({BusType.RTU, BusType.TCP})
        assert any("9600" in note for note in profile.notes)


def test_a_string_check_matches_a_prefix() -> None:
    check = Check.text(H, 30000, 15, "SUN2000")
    assert check.count == 15
    words = [int.from_bytes(b"SUN2000-5KTL-L1\0"[i : i + 2], "big") for i in range(0, 16, 2)]
    assert check.accepts(words + [0] * 7)
    assert not check.accepts([int.from_bytes(b"SG", "big")] + [0] * 14)
    assert not check.accepts([0] * 15)
    with pytest.raises(ValueError, match="prefix"):
        Check(H, 30000, DataType.STRING, 0, 0, length=15)
    with pytest.raises(ValueError, match="prefix"):
        Check(H, 30070, DataType.UINT16, 0, 1, prefix="x")
