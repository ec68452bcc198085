"""Sungrow SH hybrid inverters (SH-K, SH-RS, SH-RT, SH-T), with the battery behind them.

Source: Sungrow "Communication Protocol of Residential Hybrid Inverter" V1.1.11
(TI, 2025-11-17), Table 3 "Running Information Variable" (read-only registers,
function 04), Table 4 "Parameter Setting Definition" (holding registers,
functions 03/06/0x10), Appendix 2 "Running State" and Appendix 3 "Power Flow
State"; checked against V1.0.23 (TI_20211231), which covers the older SH5K-20,
SH3K6/SH4K6 and SH5K-30 low-voltage models, with the same addresses for every
register read here. Transcriptions cross-checked: mkaiser/Sungrow-SHx-Inverter-
Modbus-Home-Assistant (modbus_sungrow.yaml) and bohdan-s/SunGather
(registers-sungrow.yaml).

Addressing: the document numbers registers from 1: "Visit all registers by
subtracting 1 from the register address" (V1.1.11, 1.2 item 4; its example reads
register 5000 as PDU address 4999, ``01 04 13 87 00 02``). Points below are
written with the document's register number, ``_input(5008, ...)`` reading PDU
address 5007, so every comment can be checked against the table as printed.

Types (V1.1.11, Table 1): U16/S16 big-endian; U32/S32 "little-endian for
double-word data": the low word first (CDAB). The document's example 4.2 shows
it: Total Output Energy 73215.0 kWh is 0x2BF6 then 0x000B. Unavailable values
read 0xFFFF (U16), 0xFFFFFFFF (U32), 0x7FFF (S16) or 0x7FFFFFFF (S32) (1.2 item 4,
point 5): the map declares them ``unavailable``, so they are absent, never
65535 W.

Battery: the battery (Sungrow SBR/SBH, LG, BYD, Pylontech...) is read through
the inverter, registers 13020-13028 and 13040-13042. Its power 13022 and current
13021 are U16 in the document, always >= 0, with the direction in the power flow
state 13001 (Appendix 3: bit 1 charging, bit 2 discharging); several firmwares
send them signed instead (S16 on the SH-RS, V1.1.11 note to 13021; the sign
changed with firmware of late 2024, as reported in mkaiser's tracker). Reading
them as S16 and taking the sign from 13001 gives the protocol's sign on every
firmware (docs/protocol.md, "Signs": > 0 discharging). V1.1.11 recommends
5214-5215 (S32) and 5631 instead, without stating their sign, and V1.0.23 firmware
lacks them; this map keeps 13021/13022.

Grid: 13010-13011 "Export power", S32 W, > 0 delivered to the grid (only valid
with the Sungrow smart meter connected, note 1): ``grid.power_w`` is its negative
(> 0 importing). The newer 5601 "Meter Active Power" (> 0 buy from grid, V1.1.7 on)
says the same where firmware has it.

Read limits: the document gives none per request. The blocks read here are 16,
1 and 48 registers, well within what SunGather reads in one request from these
inverters (up to 100 in 5000-6800, 125 from 13000); ``max_count`` is 100. The
document warns that the holding (RW) registers "do not support frequent periodic
reading" through the WiNet-S dongle (1.2 item 4, point 6): the poll reads input
registers only, and the holding ones are listed for the simulator alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from drivers.bus import BusType
from drivers.identity import IdentityField, code_point, identity_map, text_point
from drivers.profile import Point, PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType, WordOrder
from telemetry.roles import Role

SOURCE: Final = (
    "Sungrow Communication Protocol of Residential Hybrid Inverter V1.1.11 (2025-11-17), "
    "Table 3 running information (input, 04), Appendix 2-3; V1.0.23 (TI_20211231)"
)
# V1.1.11, 1.2 item 4, point 1: PDU address = register number - 1.
ADDRESS_OFFSET: Final = 1
SERIAL_REGISTER: Final = 4990  # Table 3 "Serial number", 10 registers of UTF-8
SERIAL_REGISTERS: Final = 10
MAX_REGISTERS: Final = 100

U16, S16, U32, S32 = DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32

# V1.1.11 Appendix 3 "Power Flow State" (register 13001).
FLOW_PV: Final = 1 << 0
FLOW_CHARGING: Final = 1 << 1
FLOW_DISCHARGING: Final = 1 << 2
FLOW_LOAD: Final = 1 << 3
FLOW_FEED_IN: Final = 1 << 4
FLOW_IMPORT: Final = 1 << 5

# V1.1.11 Appendix 2 "Running State" (register 13000): the document gives most
# states two codes (the newer first, e.g. Stop 0x8000/0x0001); V1.0.23 Appendix
# 1.1 "System state" uses the second set (Run 0x0040, Stop 0x0002 ...), whose
# 0x0002 V1.1.11 calls "Key stop". Both sets decode; the encoder writes the last
# code listed for a name.
RUNNING_STATES: Final = (
    (0x0000, "running"),
    (0x0040, "running"),
    (0x0014, "microgrid"),
    (0x0400, "maintain_mode"),
    (0x0800, "compulsory_mode"),
    (0x1000, "off_grid"),
    (0x2000, "open_loop"),
    (0x4000, "external_ems"),
    (0x4001, "emergency_charging"),
    (0x1111, "uninitialized"),
    (0x0001, "stop"),
    (0x8000, "stop"),
    (0x0002, "key_stop"),
    (0x1300, "key_stop"),
    (0x0004, "emergency_stop"),
    (0x1500, "emergency_stop"),
    (0x0008, "standby"),
    (0x1400, "standby"),
    (0x0010, "initial_standby"),
    (0x1200, "initial_standby"),
    (0x0020, "starting"),
    (0x1600, "starting"),
    (0x1800, "station_building"),
    (0x9100, "warn_running"),
    (0x0080, "derating"),
    (0x8100, "derating"),
    (0x8200, "dispatch"),
    (0x0100, "fault"),
    (0x5500, "fault"),
    (0x1700, "afci_shutdown"),
    (0x1900, "safe_mode"),
    (0x0041, "off_grid_charge"),
    (0x0200, "update_failed"),
    (0x2500, "communicate_fault"),
    (0x2501, "restarting"),
)

# V1.1.11 Appendix 1 and V1.0.23 register 5000: SH device type codes lie in
# 0x0D03 (SH5K-V13) .. 0x0D2A (MG10RL) and 0x0E00 (SH5.0RT) .. 0x0E28 (SH25T).
DEVICE_TYPE_LOW: Final = 0x0D00
DEVICE_TYPE_HIGH: Final = 0x0E2F
SH5K_20: Final = 0x0D09  # V1.0.23: SH5K-20, the 5 kW single-phase 48 V model

# Register 5000 "Device type code" -> model, the SH range only (the map reads no
# other). Sources: "Communication Protocol of Residential Hybrid Inverter" V1.0.20,
# 3.1 item 6 "Device type code" (the first fifteen: SH5K-20 .. SH5.0RT, 0xD0E
# printed "0xDOE"); the RS, RT-20, RT-V112, RT-V122, T and MG codes from the
# transcription of the later protocol in mkaiser/Sungrow-SHx-Inverter-Modbus-Home-
# Assistant, modbus_sungrow.yaml, template sensor "Sungrow device type" (which
# agrees with V1.0.20 on all fourteen codes both list). A code neither lists
# (0x0D29, 0x0D2A ...) shows as the number.
DEVICE_TYPE_CODES: Final[Mapping[int, str]] = {
    0x0D03: "SH5K-V13",
    0x0D06: "SH3K6",
    0x0D07: "SH4K6",
    0x0D09: "SH5K-20",
    0x0D0A: "SH3K6-30",
    0x0D0B: "SH4K6-30",
    0x0D0C: "SH5K-30",
    0x0D0D: "SH3.6RS",
    0x0D0E: "SH4.6RS",
    0x0D0F: "SH5.0RS",
    0x0D10: "SH6.0RS",
    0x0D17: "SH3.0RS",
    0x0D18: "SH4.0RS",
    0x0D1A: "SH8.0RS",
    0x0D1B: "SH10RS",
    0x0D27: "MG5RL",
    0x0D28: "MG6RL",
    0x0E00: "SH5.0RT",
    0x0E01: "SH6.0RT",
    0x0E02: "SH8.0RT",
    0x0E03: "SH10RT",
    0x0E08: "SH5.0RT-V122",
    0x0E09: "SH6.0RT-V122",
    0x0E0A: "SH8.0RT-V122",
    0x0E0B: "SH10RT-V122",
    0x0E0C: "SH5.0RT-V112",
    0x0E0D: "SH6.0RT-V112",
    0x0E0E: "SH8.0RT-V112",
    0x0E0F: "SH10RT-V112",
    0x0E10: "SH5.0RT-20",
    0x0E11: "SH6.0RT-20",
    0x0E12: "SH8.0RT-20",
    0x0E13: "SH10RT-20",
    0x0E20: "SH5T",
    0x0E21: "SH6T",
    0x0E22: "SH8T",
    0x0E23: "SH10T",
    0x0E24: "SH12T",
    0x0E25: "SH15T",
    0x0E26: "SH20T",
    0x0E28: "SH25T",
}


# Read-only registers, by the document's register number; U32/S32: low word first (Table 1).
_input: Final = PointBuilder(
    RegisterType.INPUT, WordOrder.CDAB, locate=lambda register: register - ADDRESS_OFFSET
)
_setting: Final = PointBuilder(
    RegisterType.HOLDING, locate=lambda register: register - ADDRESS_OFFSET
)


def _holding(register: int, name: str, constant: int) -> Point:
    """A setting (holding register), served by the simulator with its value."""
    return _setting(name, register, U16, None, constant=constant)


def _derive(sections: Sections) -> None:
    """Battery sign and state from the power flow state; PV totals from the MPPTs."""
    extra = sections.get("extra", {})
    battery = sections.get("battery", {})
    flow = extra.get("power_flow_status")
    if isinstance(flow, float):
        bits = int(flow)
        sign = 0.0
        state = "idle"
        if bits & FLOW_DISCHARGING:
            sign, state = 1.0, "discharging"
        elif bits & FLOW_CHARGING:
            sign, state = -1.0, "charging"
        for name in ("power_w", "current_a"):
            value = battery.get(name)
            if isinstance(value, float):
                battery[name] = abs(value) * sign
        if battery:
            battery["state"] = state
    currents = [
        (value, extra.get(f"pv{n}_voltage_v"))
        for n in (1, 2)
        if isinstance(value := extra.get(f"pv{n}_current_a"), float)
    ]
    if currents:
        solar = sections.setdefault("solar", {})
        solar["pv_current_a"] = round(sum(current for current, _ in currents), 3)
        # The voltage of the MPPT carrying the most current: the array's operating point.
        _, voltage = max(currents, key=lambda pair: pair[0])
        if isinstance(voltage, float):
            solar["pv_voltage_v"] = voltage


# What the edge polls: three requests (5004-5019, 5242, 13000-13047).
_POLLED: Final = (
    # 5004-5005 "Total Output Energy", U32 0.1 kWh: PV generation and battery discharge.
    _input("Total output energy", 5004, U32, "inverter.energy_total_wh", 100.0),
    _input("Inside temperature", 5008, S16, "inverter.temperature_c", 0.1),
    _input("MPPT 1 voltage", 5011, U16, "extra.pv1_voltage_v", 0.1),
    _input("MPPT 1 current", 5012, U16, "extra.pv1_current_a", 0.1),
    _input("MPPT 2 voltage", 5013, U16, "extra.pv2_voltage_v", 0.1),
    _input("MPPT 2 current", 5014, U16, "extra.pv2_current_a", 0.1),
    # 5017-5018 "Total DC power", U32 1 W: "Total PV power".
    _input("Total DC power", 5017, U32, "solar.pv_power_w"),
    # 5019: phase A voltage (output type 0 or 1), A-B line voltage on a 3P3L unit.
    _input("Phase A voltage", 5019, U16, "inverter.ac_voltage_v", 0.1),
    # 5242 "Grid Frequency", 0.01 Hz, "recommended ... instead of 5036" (0.1 Hz).
    _input("Grid frequency", 5242, U16, "grid.frequency_hz", 0.01),
    _input("Running state", 13000, U16, "inverter.state", states=RUNNING_STATES),
    _input("Power flow status", 13001, U16, "extra.power_flow_status"),
    _input("Daily PV generation", 13002, U16, "solar.energy_today_wh", 100.0),
    _input("Total PV generation", 13003, U32, "solar.energy_total_wh", 100.0),
    # 13008-13009 "Load power", S32 W (S32 since V1.0.15): the house's consumption.
    _input("Load power", 13008, S32, "extra.house_power_w"),
    # 13010-13011 "Export power", S32 W, > 0 to the grid: negated (> 0 importing).
    _input("Export power", 13010, S32, "grid.power_w", -1.0),
    _input("Battery voltage", 13020, U16, "battery.voltage_v", 0.1),
    # 13021/13022: magnitudes; the sign comes from 13001 (module docstring).
    _input("Battery current", 13021, S16, "battery.current_a", 0.1),
    _input("Battery power", 13022, S16, "battery.power_w"),
    _input("Battery SOC", 13023, U16, "battery.soc_pct", 0.1),
    _input("Battery SOH", 13024, U16, "battery.soh_pct", 0.1),
    _input("Battery temperature", 13025, S16, "battery.temperature_c", 0.1),
    _input("Total battery discharge energy", 13027, U32, "extra.battery_discharge_wh", 100.0),
    # 13031: phase A output current (the only one uploaded on a single-phase unit).
    _input("Phase A current", 13031, S16, "inverter.ac_current_a", 0.1),
    # 13034-13035 "Total active power", S32 W: the inverter's AC output.
    _input("Total active power", 13034, S32, "inverter.ac_power_w"),
    _input("Total import energy", 13037, U32, "grid.import_energy_wh", 100.0),
    _input("Total charge energy", 13041, U32, "extra.battery_charge_wh", 100.0),
    _input("Total export energy", 13046, U32, "grid.export_energy_wh", 100.0),
)

_UNAVAILABLE: Final = (
    (U16, (0xFFFF,)),
    (S16, (0x7FFF,)),
    (U32, (0xFFFF, 0xFFFF)),
    (S32, (0x7FFF, 0xFFFF)),
)

SUNGROW_SH: Final = RegisterMap(
    name="sungrow_sh",
    source=SOURCE,
    points=_POLLED,
    max_count=MAX_REGISTERS,
    unavailable=_UNAVAILABLE,
    derive=_derive,
)

# Documented registers the poll leaves out; the simulator answers them. The
# identity block (5000-5002) never changes and the holding registers are
# settings the document asks not to poll through WiNet-S.
SH_UNPOLLED: Final = (
    # Table 3: 4990-4999 "Serial number", UTF-8, 10 registers (the identity below).
    Point(
        "Serial number",
        SERIAL_REGISTER - ADDRESS_OFFSET,
        RegisterType.INPUT,
        DataType.STRING,
        length=SERIAL_REGISTERS,
        constant="A2312345678",
    ),
    _input("Device type code", 5000, U16, None, constant=SH5K_20),
    _input("Nominal output power", 5001, U16, "extra.inverter_rated_power_w", 100.0),
    _input("Output type", 5002, U16, None, constant=0),  # 0 single phase, 1 3P4L, 2 3P3L
    # Table 4: 5000-5005 "System clock" (year .. second), 13050 "EMS mode selection"
    # (0 self-consumption), 13058 "Max. SOC" and 13059 "Min. SOC" (0.1 %).
    _holding(5000, "System clock: year", 2026),
    _holding(13050, "EMS mode selection", 0),
    _holding(13058, "Max. SOC", 1000),
    _holding(13059, "Min. SOC", 100),
)

# Read once per connection (drivers/identity.py), in one request: Table 3's
# 4990-4999 "Serial number" (UTF-8, 10 registers; the transcriptions read it at
# PDU address 4989, count 10) and 5000's device type code, the model by
# DEVICE_TYPE_CODES.
IDENTITY_MAP: Final = identity_map(
    "sungrow_sh",
    f"{SOURCE}: Table 3, 4990-4999 serial number, 5000 device type code",
    (
        text_point(
            IdentityField.SERIAL_NUMBER,
            RegisterType.INPUT,
            SERIAL_REGISTER - ADDRESS_OFFSET,
            SERIAL_REGISTERS,
        ),
        code_point(
            IdentityField.MODEL,
            RegisterType.INPUT,
            5000 - ADDRESS_OFFSET,
            U16,
            DEVICE_TYPE_CODES,
        ),
    ),
    max_count=MAX_REGISTERS,
)

SUNGROW_SH_SERVED: Final = RegisterMap(
    name="sungrow_sh",
    source=SOURCE,
    points=_POLLED + SH_UNPOLLED,
    max_count=MAX_REGISTERS,
    unavailable=_UNAVAILABLE,
    derive=_derive,
)


PROFILES: Final = (
    DeviceProfile(
        name="sungrow_sh",
        vendor="Sungrow",
        models=(
            "SH hybrid inverters: SH3K6/SH4K6/SH5K-20/SH5K-30, SH3.0-10RS, SH5.0-10RT "
            "(-20, -V112, -V122), SH5-25T, MG5-10RL (protocol V1.0.23-V1.1.11)"
        ),
        role=Role.INVERTER,
        register_map=SUNGROW_SH,
        source=SOURCE,
        transports=frozenset({BusType.RTU, BusType.TCP}),
        default_unit=1,
        config_name="inverter",
        identity=IDENTITY_MAP,
        # 5000 device type code (Appendix 1), 5001 nominal output power (0.1 kW,
        # 3.0-25.0 kW for the SH range), 5002 output type (0..2).
        signature=Signature(
            "Sungrow SH hybrid inverter (device type code 0xD03-0xE28 at register 5000)",
            (
                Check(RegisterType.INPUT, 4999, U16, DEVICE_TYPE_LOW, DEVICE_TYPE_HIGH),
                Check(RegisterType.INPUT, 5000, U16, 3.0, 25.0, scale=0.1),
                Check(RegisterType.INPUT, 5001, U16, 0, 2),
            ),
        ),
        notes=(
            "Register numbers in Sungrow's document start at 1: the map reads register "
            "N at address N-1.",
            "Real-time values are input registers (function 04); the poll reads no "
            "holding register, as the document asks for WiNet-S.",
            "Modbus TCP on port 502: the SH-RT's own LAN port (enable 'Inverter ETH "
            "port' in iSolarCloud) is more complete than the WiNet-S dongle, which "
            "leaves some registers out; unit id 1 on both. RS485: 9600 8N1, and wait "
            "up to 1 s for an answer (the document's minimum request period).",
            "Battery values (SBR, LG, BYD, Pylontech...) come through the inverter; "
            "grid values need the Sungrow smart meter (DTSU666) on the inverter.",
            "Battery power and current take their sign from the power flow state "
            "(13001), so old and new firmware read the same.",
        ),
    ),
)
