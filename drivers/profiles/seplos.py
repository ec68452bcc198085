"""Seplos V3 battery management system (Modbus-RTU).

Source: Seplos (Shanghai Xinzhiheng, "XZH") "BMS Modbus-RTU protocol" V0.3
(2024-10-15), section 3, input registers (function code 04): block PIA from
0x1000 (pack summary) and block PIB from 0x1100 (cell voltages and
temperatures); read from the community English translation kept beside the
Chinese and English originals in syssi/esphome-seplos-bms
(docs/XZH BMS Modbus-RTU Protocol V0.3.md). Units as documented: 10 mV, 10 mA,
10 mAh, 10 Ah for the discharged total, 0.1 % for SOC/SOH, 1 mV for cells, 1 A
for the current limits and 0.1 K for temperatures, "degC = (raw - 2731) / 10".
Registers hold one big-endian word each; nothing here spans two registers.

The vendor's own example reads (section 5) take PIA as 0x1000 x 0x12 and PIB as
0x1100 x 0x1A, reserved registers (0x100E, 0x1114-0x1117) included, so a plan
bridging them is what the BMS expects: a full poll is these two requests.

Current unit: from V0.2 the document gives 0.1 A on 300 A and 400 A boards
and 0.01 A on boards of 200 A and below. Nothing in PIA says which board
answers; this profile follows the 0.01 A of the boards of 200 A and below (the
document's examples), so a 300 A board reads ten times too small here.

Identity: none read (drivers/identity.py). The older V0.1 of the protocol
(2023-02-09, the same repository's "XZH BMS Modbus-RTU Protocol.md") has a
"Version Info" block at 0x1700 (factory name, device name, firmware version, BMS
and pack serial numbers, ASCII "small end first"); where V0.3 places it, and with
which function code, was not checked against V0.3, so it is left out.

Signs: the BMS reports charge current positive (its discharge thresholds and
requests, SPA 0x131B-0x1321 and 0x1367, are negative amperes); the protocol
wants discharge positive (docs/protocol.md, "A reading"), hence the negative scale on
0x1001.
"""

from __future__ import annotations

from typing import Final

from drivers.bus import BusType
from drivers.profile import PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

SOURCE: Final = "Seplos (XZH) BMS Modbus-RTU protocol V0.3, input registers PIA 0x1000, PIB 0x1100"
# V0.3 section 3: "degC = (raw - 2731) / 10". (syssi's ESPHome example configs
# subtract 2731.5; the vendor's document and its worked examples use 2731.)
KELVIN_OFFSET: Final = -273.1
CELLS: Final = 16
CELL_TEMPERATURES: Final = 4
# |I| below this is "idle": the BMS's 10 mA resolution plus sensor offset.
IDLE_CURRENT_A: Final = 0.05


_reg: Final = PointBuilder(RegisterType.INPUT)


def _derive(sections: Sections) -> None:
    """Battery power and state from pack voltage and current (not registers of V3)."""
    battery = sections.get("battery", {})
    voltage, current = battery.get("voltage_v"), battery.get("current_a")
    if isinstance(voltage, float) and isinstance(current, float):
        battery["power_w"] = round(voltage * current, 2)
        if current > IDLE_CURRENT_A:
            battery["state"] = "discharging"
        elif current < -IDLE_CURRENT_A:
            battery["state"] = "charging"
        else:
            battery["state"] = "idle"


# V0.3 PIA, 0x1000-0x1010 (0x100E reserved): UINT16 except the INT16 current.
_PIA: Final = (
    _reg("Pack voltage", 0x1000, DataType.UINT16, "battery.voltage_v", 0.01),
    _reg("Current", 0x1001, DataType.INT16, "battery.current_a", -0.01),
    _reg("Remaining capacity", 0x1002, DataType.UINT16, "extra.bms_remaining_capacity_ah", 0.01),
    _reg("Total capacity", 0x1003, DataType.UINT16, "extra.bms_full_capacity_ah", 0.01),
    _reg("Total discharge capacity", 0x1004, DataType.UINT16, "extra.bms_total_discharge_ah", 10.0),
    _reg("SOC", 0x1005, DataType.UINT16, "battery.soc_pct", 0.1),
    _reg("SOH", 0x1006, DataType.UINT16, "battery.soh_pct", 0.1),
    _reg("Cycle", 0x1007, DataType.UINT16, "extra.bms_cycle_count", 1.0),
    _reg("Average cell voltage", 0x1008, DataType.UINT16, "extra.bms_cell_voltage_avg_v", 0.001),
    _reg(
        "Average cell temperature",
        0x1009,
        DataType.UINT16,
        "battery.temperature_c",
        0.1,
        offset=KELVIN_OFFSET,
    ),
    _reg("Max cell voltage", 0x100A, DataType.UINT16, "battery.cell_voltage_max_v", 0.001),
    _reg("Min cell voltage", 0x100B, DataType.UINT16, "battery.cell_voltage_min_v", 0.001),
    _reg(
        "Max cell temperature",
        0x100C,
        DataType.UINT16,
        "extra.bms_cell_temperature_max_c",
        0.1,
        offset=KELVIN_OFFSET,
    ),
    _reg(
        "Min cell temperature",
        0x100D,
        DataType.UINT16,
        "extra.bms_cell_temperature_min_c",
        0.1,
        offset=KELVIN_OFFSET,
    ),
    _reg(
        "Max discharge current", 0x100F, DataType.UINT16, "extra.bms_max_discharge_current_a", 1.0
    ),
    _reg("Max charge current", 0x1010, DataType.UINT16, "extra.bms_max_charge_current_a", 1.0),
)

# V0.3 PIB: cells 0x1100-0x110F, cell temperatures 0x1110-0x1113 (0x1114-0x1117
# reserved), ambient 0x1118, power (MOSFET) 0x1119.
_PIB: Final = (
    *(
        _reg(
            f"Cell {i + 1} voltage",
            0x1100 + i,
            DataType.UINT16,
            f"extra.bms_cell_voltage_{i + 1:02d}_v",
            0.001,
        )
        for i in range(CELLS)
    ),
    *(
        _reg(
            f"Cell temperature {i + 1}",
            0x1110 + i,
            DataType.UINT16,
            f"extra.bms_cell_temperature_{i + 1}_c",
            0.1,
            offset=KELVIN_OFFSET,
        )
        for i in range(CELL_TEMPERATURES)
    ),
    _reg(
        "Environment temperature",
        0x1118,
        DataType.UINT16,
        "extra.bms_ambient_temperature_c",
        0.1,
        offset=KELVIN_OFFSET,
    ),
    _reg(
        "Power temperature",
        0x1119,
        DataType.UINT16,
        "extra.bms_power_temperature_c",
        0.1,
        offset=KELVIN_OFFSET,
    ),
)

SEPLOS_V3: Final = RegisterMap(
    name="seplos_v3",
    source=SOURCE,
    points=_PIA + _PIB,
    derive=_derive,
)


PROFILES: Final = (
    DeviceProfile(
        name="seplos_v3",
        vendor="Seplos",
        models="V3 BMS (Modbus-RTU protocol V0.3)",
        role=Role.BATTERY,
        register_map=SEPLOS_V3,
        source=SOURCE,
        transports=frozenset({BusType.RTU}),
        config_name="bms",
        # 0x1000 pack voltage (V x 100), 0x1005 SOC and 0x1006 SOH (% x 10),
        # 0x100A highest cell voltage (V x 1000): a 4S..16S lithium pack.
        signature=Signature(
            "Seplos V3 BMS (pack voltage, SOC, SOH, cell voltage at 0x1000)",
            (
                Check(RegisterType.INPUT, 0x1000, DataType.UINT16, 8.0, 64.0, scale=0.01),
                Check(RegisterType.INPUT, 0x1005, DataType.UINT16, 0.0, 100.0, scale=0.1),
                Check(RegisterType.INPUT, 0x1006, DataType.UINT16, 0.0, 100.0, scale=0.1),
                Check(RegisterType.INPUT, 0x100A, DataType.UINT16, 2.0, 4.5, scale=0.001),
            ),
        ),
    ),
)
