"""JK-PB BMS map: a running-data block laid out byte by byte as V1.1's table gives it.

The image is built as the document describes the BMS's memory (byte offsets
from 0x1200, big-endian values), then cut into the 16-bit words a read from
0x1200 returns: the map's word addresses and the byte offsets must agree, or
the decoded values come out of the wrong bytes.
"""

from __future__ import annotations

import pytest

from drivers.planner import ReadRequest
from drivers.profile import RegisterImage, decode_map, register_address, wire_address
from drivers.profiles import get_profile
from drivers.profiles.describe import profile_details
from drivers.profiles.jkbms import BYTE_TABLES, JK_PB, RUNNING, register
from drivers.registers import RegisterType

H = RegisterType.HOLDING


def _block(values: dict[int, tuple[int, int, bool]], size: int = 0x110) -> bytearray:
    """Byte offset -> (value, length in bytes, signed), big-endian, as in V1.1's table."""
    memory = bytearray(size)
    for offset, (value, length, signed) in values.items():
        memory[offset : offset + length] = value.to_bytes(length, "big", signed=signed)
    return memory


def _words(memory: bytearray, field: int) -> RegisterImage:
    """What reads from ``field`` return, by word: bytes 2i and 2i+1 are register field + i."""
    table = {
        field + i // 2: int.from_bytes(memory[i : i + 2], "big") for i in range(0, len(memory), 2)
    }
    return {H: table}


CELL_MV = (
    3301,
    3305,
    3298,
    3310,
    3302,
    3299,
    3304,
    3300,
    3306,
    3297,
    3303,
    3301,
    3300,
    3305,
    3299,
    3302,
)

# A pack charging at 20 A (the BMS counts charge positive).
_RUNNING = {
    **{2 * n: (mv, 2, False) for n, mv in enumerate(CELL_MV)},  # 0x00-0x1E CellVol0-15, mV
    0x40: (0x0000FFFF, 4, False),  # CellSta: cells 0-15 present
    0x44: (3302, 2, False),  # CellVolAve, mV
    0x46: (13, 2, False),  # CellVdifMax, mV
    0x48: (0x040A, 2, False),  # MaxVolCellNbr 4 (high byte), MinVolCellNbr 10
    0x8A: (312, 2, True),  # TempMos: 31.2 degC
    0x90: (52_832, 4, False),  # BatVol: 52.832 V
    0x94: (1_056_640, 4, False),  # BatWatt: 1056.64 W (a size)
    0x98: (20_000, 4, True),  # BatCurrent: +20.000 A, charging
    0x9C: (253, 2, True),  # TempBat1: 25.3 degC
    0x9E: (248, 2, True),  # TempBat2: 24.8 degC
    0xA0: (1 << 8, 4, False),  # alarms: bit 8, charge over-temperature
    0xA4: (-120, 2, True),  # BalanCurrent: -0.120 A
    0xA6: (0x01, 1, False),  # BalanSta: 1 charging
    0xA7: (87, 1, False),  # SOC 87 %
    0xA8: (243_600, 4, True),  # SOCCapRemain: 243.6 Ah
    0xAC: (280_000, 4, False),  # SOCFullChargeCap: 280 Ah
    0xB0: (42, 4, False),  # SOCCycleCount
    0xB4: (11_760_000, 4, False),  # SOCCycleCap: 11760 Ah
    0xB8: (99, 1, False),  # SOCSOH 99 %
    0xB9: (0, 1, False),  # Precharge off
    0xC0: (1, 1, False),  # charge MOSFET on
    0xC1: (1, 1, False),  # discharge MOSFET on
    0xF8: (-15, 2, True),  # TempBat3: -1.5 degC
    0xFA: (260, 2, True),  # TempBat4: 26.0 degC
}


def test_running_data_block() -> None:
    sections = decode_map(JK_PB, _words(_block(_RUNNING), RUNNING))
    battery = sections["battery"]
    assert battery["voltage_v"] == 52.832
    assert battery["current_a"] == -20.0  # charging: negative in the protocol
    assert battery["power_w"] == -1056.64
    assert battery["state"] == "charging"
    assert battery["soc_pct"] == 87.0  # the low byte; the balancer's state is the high one
    assert battery["soh_pct"] == 99.0
    assert battery["temperature_c"] == 18.65  # the four sensors' mean
    assert battery["cell_voltage_min_v"] == 3.297
    assert battery["cell_voltage_max_v"] == 3.31
    extra = sections["extra"]
    assert [extra[f"bms_cell_voltage_{n:02d}_v"] for n in range(1, 17)] == [
        mv / 1000 for mv in CELL_MV
    ]
    assert extra["bms_cell_voltage_avg_v"] == 3.302
    assert extra["bms_cell_voltage_delta_v"] == 0.013
    assert extra["bms_mosfet_temperature_c"] == 31.2
    assert extra["bms_cell_temperature_3_c"] == -1.5
    assert extra["bms_alarm_flags"] == 256.0
    assert extra["bms_balance_current_a"] == -0.12
    assert extra["bms_remaining_capacity_ah"] == 243.6
    assert extra["bms_full_capacity_ah"] == 280.0
    assert extra["bms_cycle_count"] == 42.0
    assert extra["bms_cycled_capacity_ah"] == 11760.0
    assert "jk_power_size_w" not in extra  # given its direction, then dropped


def test_discharging_gives_positive_current_and_power() -> None:
    running = dict(_RUNNING)
    running[0x98] = (-35_500, 4, True)  # -35.5 A on the BMS: discharging
    running[0x94] = (1_875_536, 4, False)
    battery = decode_map(JK_PB, _words(_block(running), RUNNING))["battery"]
    assert battery["current_a"] == 35.5
    assert battery["power_w"] == 1875.536
    assert battery["state"] == "discharging"


def test_byte_addresses() -> None:
    # V1.1: pack voltage at 0x1200 + 0x90, the cell count setting at 0x1000 + 0x6C.
    assert register(RUNNING, 0x90) == 0x1248
    assert JK_PB.wire_address(0x1248) == 0x1290
    assert wire_address(BYTE_TABLES, register(0x1000, 0x6C)) == 0x106C
    assert wire_address(BYTE_TABLES, register(0x1400, 0x10)) == 0x1410
    assert register_address(BYTE_TABLES, 0x1290) == (0x1248, 0)
    assert register_address(BYTE_TABLES, 0x12A7) == (0x1253, 1)  # SOC: the low byte
    assert wire_address((), 0x1248) == 0x1248  # ordinary devices: unchanged
    with pytest.raises(ValueError, match="not on a word"):
        register(RUNNING, 0xA7)


def test_read_plan() -> None:
    # Cells to temperature 3 in one read (the wire resistances bridged), then temperature 4.
    assert JK_PB.plan == (ReadRequest(H, 0x1200, 125), ReadRequest(H, 0x127D, 1))
    assert [JK_PB.wire_address(r.address) for r in JK_PB.plan] == [0x1200, 0x12FA]
    assert len(JK_PB.minimal_plan) == 2
    assert JK_PB.max_count == 125


def test_catalogue_entry() -> None:
    profile = get_profile("jk_pb")
    assert profile.role.value == "battery"
    assert profile.sections == ("extra", "battery")
    assert profile.config_name == "bms"
    assert profile.signature is not None
    # ``ems devices jk_pb`` shows the document's byte addresses, as sent on the wire.
    details = profile_details("jk_pb")
    assert "holding 4858 (0x12FA) x 1" in details
    assert "holding 0x1290 uint32 (Pack voltage)" in details
