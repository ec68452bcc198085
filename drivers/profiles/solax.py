"""SolaX X1/X3 hybrid inverters (Gen3, Gen4), with the battery and meter behind them.

Source: SolaX "Energy Storage Inverter Modbus TCP&RTU Communication protocols"
V3.21 (the public "Hybrid X1&X3-G4 ModbusTCP&RTU" document), "0x04: Read Input
Register" (its table of input registers 0x0000-0x0120), "Table 2-2 Run mode
description" and "0x03: Read Holding Register" (0x0000-0x0006 InverterSN).
Addresses are the PDU addresses the document prints (0x0046 is read as 0x0046).
Transcriptions cross-checked for facts: wills106/homeassistant-solax-modbus
(plugin_solax.py) and evcc's "solax" template.

Word order: "32bit data use little endian format": every 32-bit value is given
as "(0x46:LSB,0x47:MSB)", the low word at the lower address (CDAB), unlike
most Modbus devices. Energies are 0.1 kWh except the meter's, 0.01 kWh.

Signs: 0x0046 "feedin_power" is "obtained from Meter or CT (Positive mean
generate power; Negative mean consumed power)", i.e. > 0 exporting:
``grid.power_w`` is its negative. 0x0015/0x0016 "BatCurrent_Charge1" and
"Batpower_Charge1" count charging as positive (their names, and 0x0019
BDCStatus "0: discharge 1: charge 2: stop"; wills106 names the value "Battery
Power Charge", evcc negates it for a discharge-positive battery): negated here,
> 0 discharging (docs/protocol.md, "Signs").

X1 and X3: the X1 inverter-side values are 0x0000-0x0002 and 0x0007; an X3 puts
them per phase at 0x006A-0x0075, and its meter per phase at 0x0082-0x0087.
``SOLAX_X1`` reads the X1 block; ``SOLAX_X3`` the X3 one. Battery, PV, meter
totals and counters are at the same addresses on both.

Read limits: the document gives no register count per request (only "the least
interval time between two instructions 1 Sec" and a 1 s response timeout).
wills106's integration reads these inverters in blocks of up to 100 registers
across the reserved words (0x001F, 0x0028-0x003D, 0x0055-0x0065), which answer
0; ``max_count`` is 100 and ``max_gap`` bridges them, so a poll is two requests
(0x0000-0x0053 and 0x0094-0x00BF), the fewest, and the profile's
``command_gap_s`` keeps them (and the next poll's first) 1 s apart, as the
document asks.
"""

from __future__ import annotations

from typing import Final

from drivers.bus import BusType
from drivers.identity import IdentityField, identity_map, text_point
from drivers.profile import Point, PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType, WordOrder
from telemetry.roles import Role

SOURCE: Final = (
    "SolaX Energy Storage Inverter Modbus TCP&RTU Communication protocols V3.21 "
    "(Hybrid X1&X3-G4), input registers 0x0000-0x0120, Table 2-2"
)
MAX_REGISTERS: Final = 100
# Bridges the reserved words between the documented blocks (module docstring).
MAX_GAP: Final = 70
# "Time request": "The least interval time between two instructions 1 Sec".
COMMAND_GAP_S: Final = 1.0

U16, S16, U32, S32 = DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32

# Table 2-2 "Run mode description" (0x0009).
RUN_MODES: Final = (
    (0, "waiting"),
    (1, "checking"),
    (2, "normal"),
    (3, "fault"),
    (4, "permanent_fault"),
    (5, "update"),
    (6, "off_grid_waiting"),
    (7, "off_grid"),
    (8, "self_testing"),
    (9, "idle"),
    (10, "standby"),
)
# 0x0019 BDCStatus: "0: discharge 1: charge 2: stop".
BDC_STATES: Final = ((0, "discharging"), (1, "charging"), (2, "idle"))
# Holding 0x0000-0x0006 "InverterSN", 14 characters; the document's example
# answers "H47522ZHENGWEN". SolaX serial numbers of hybrids begin with "H" and the
# series digit ("H4" for the X1-Hybrid G4): the first register reads 0x4830-0x4839.
SN_REGISTERS: Final = 7
SN_FIRST_WORD_LOW: Final = 0x4830  # "H0"
SN_FIRST_WORD_HIGH: Final = 0x4839  # "H9"


# "(LSB, MSB)": the low word first.
_input: Final = PointBuilder(RegisterType.INPUT, WordOrder.CDAB)
_holding: Final = PointBuilder(RegisterType.HOLDING)


def _derive(sections: Sections) -> None:
    """The array's power, current and operating voltage from the two MPPT inputs."""
    extra = sections.get("extra", {})
    inputs = [
        (current, extra.get(f"pv{n}_voltage_v"), extra.get(f"pv{n}_power_w"))
        for n in (1, 2)
        if isinstance(current := extra.get(f"pv{n}_current_a"), float)
    ]
    if not inputs:
        return
    solar = sections.setdefault("solar", {})
    solar["pv_current_a"] = round(sum(current for current, _, _ in inputs), 3)
    powers = [power for _, _, power in inputs if isinstance(power, float)]
    if powers:
        solar["pv_power_w"] = sum(powers)
    _, voltage, _ = max(inputs, key=lambda item: item[0])
    if isinstance(voltage, float):
        solar["pv_voltage_v"] = voltage


# Registers both X1 and X3 hybrids answer at the same addresses.
_COMMON: Final = (
    _input("PvVoltage1", 0x0003, U16, "extra.pv1_voltage_v", 0.1),
    _input("PvVoltage2", 0x0004, U16, "extra.pv2_voltage_v", 0.1),
    _input("PvCurrent1", 0x0005, U16, "extra.pv1_current_a", 0.1),
    _input("PvCurrent2", 0x0006, U16, "extra.pv2_current_a", 0.1),
    _input("Temperature", 0x0008, S16, "inverter.temperature_c"),  # radiator, 1 degC
    _input("RunMode", 0x0009, U16, "inverter.state", states=RUN_MODES),
    _input("Powerdc1", 0x000A, U16, "extra.pv1_power_w"),
    _input("Powerdc2", 0x000B, U16, "extra.pv2_power_w"),
    _input("BatVoltage_Charge1", 0x0014, S16, "battery.voltage_v", 0.1),
    # 0x0015/0x0016: > 0 charging in the document; negated (> 0 discharging).
    _input("BatCurrent_Charge1", 0x0015, S16, "battery.current_a", -0.1),
    _input("Batpower_Charge1", 0x0016, S16, "battery.power_w", -1.0),
    _input("TemperatureBat", 0x0018, S16, "battery.temperature_c"),  # 1 degC
    _input("BDCStatus", 0x0019, U16, "battery.state", states=BDC_STATES),
    _input("Battery Capacity", 0x001C, U16, "battery.soc_pct"),  # 1 %
    # 0x001D (LSB) / 0x001E (MSB) "OutputEnergy_Charge": energy out of the battery.
    _input("OutputEnergy_Charge", 0x001D, U32, "extra.battery_discharge_wh", 100.0),
    # 0x0021 (LSB) / 0x0022 (MSB) "InputEnergy_Charge": energy into the battery.
    _input("InputEnergy_Charge", 0x0021, U32, "extra.battery_charge_wh", 100.0),
    # 0x0046/0x0047 "feedin_power", > 0 to the grid: negated (> 0 importing).
    _input("feedin_power", 0x0046, S32, "grid.power_w", -1.0),
    # 0x0048/0x0049 and 0x004A/0x004B: the meter's counters, 0.01 kWh.
    _input("feedin_energy_total", 0x0048, U32, "grid.export_energy_wh", 10.0),
    _input("consum_energy_total", 0x004A, U32, "grid.import_energy_wh", 10.0),
    # 0x0052/0x0053 "Etotal_togrid": total energy at the inverter's AC port, 0.1 kWh.
    _input("Etotal_togrid", 0x0052, U32, "inverter.energy_total_wh", 100.0),
    _input("SolarEnergyTotal", 0x0094, U32, "solar.energy_total_wh", 100.0),
    _input("SolarEnergyToday", 0x0096, U16, "solar.energy_today_wh", 100.0),
    # 0x00BC/0x00BD "Cell_Voltage_High/Low", 0.001 V; 0x00BF "BMS_UserSOH", 1 %.
    _input("Cell_Voltage_High", 0x00BC, U16, "battery.cell_voltage_max_v", 0.001),
    _input("Cell_Voltage_Low", 0x00BD, U16, "battery.cell_voltage_min_v", 0.001),
    _input("BMS_UserSOH", 0x00BF, U16, "battery.soh_pct"),
)

# X1: the inverter's AC port, 0x0000-0x0002 and 0x0007.
_X1: Final = (
    _input("GridVoltage", 0x0000, U16, "inverter.ac_voltage_v", 0.1),
    _input("GridCurrent", 0x0001, S16, "inverter.ac_current_a", 0.1),
    _input("GridPower", 0x0002, S16, "inverter.ac_power_w"),
    _input("GridFrequency", 0x0007, U16, "grid.frequency_hz", 0.01),
)

# X3: per phase R/S/T at 0x006A-0x0075 (voltage, current, power, frequency each),
# and the meter's feed-in per phase at 0x0082-0x0087 (S32, > 0 exporting).
_X3: Final = (
    *(
        _input(f"GridVoltage_{p}", 0x006A + 4 * i, U16, f"grid.phase_voltage_v[{i}]", 0.1)
        for i, p in enumerate("RST")
    ),
    *(
        _input(f"GridPower_{p}", 0x006C + 4 * i, S16, f"extra.inverter_phase_{i + 1}_power_w")
        for i, p in enumerate("RST")
    ),
    _input("GridFrequency_R", 0x006D, U16, "grid.frequency_hz", 0.01),
    *(
        _input(f"FeedinPower_{p}phase", 0x0082 + 2 * i, S32, f"grid.phase_power_w[{i}]", -1.0)
        for i, p in enumerate("RST")
    ),
)


def _derive_x3(sections: Sections) -> None:
    """An X3's AC power is the sum of its phases (it has no total register in V3.21)."""
    _derive(sections)
    extra = sections.get("extra", {})
    phases = [extra.get(f"inverter_phase_{n}_power_w") for n in (1, 2, 3)]
    if all(isinstance(power, float) for power in phases):
        sections.setdefault("inverter", {})["ac_power_w"] = sum(
            float(power) for power in phases if isinstance(power, float)
        )


SOLAX_X1: Final = RegisterMap(
    name="solax_x1_hybrid",
    source=SOURCE,
    points=_X1 + _COMMON,
    max_count=MAX_REGISTERS,
    max_gap=MAX_GAP,
    derive=_derive,
)

SOLAX_X3: Final = RegisterMap(
    name="solax_x3_hybrid",
    source=SOURCE,
    points=_X3 + _COMMON,
    max_count=MAX_REGISTERS,
    max_gap=MAX_GAP,
    derive=_derive_x3,
)

# Holding 0x0000-0x0006 "InverterSN" (14 characters), served by the simulator.
SN_POINT_ADDRESS: Final = 0x0000


def serial_point(serial: str) -> Point:
    """The serial number as the simulator serves it (holding 0x0000, 14 characters)."""
    return _holding(
        "InverterSN", SN_POINT_ADDRESS, DataType.STRING, None, length=SN_REGISTERS, constant=serial
    )


# Read once per connection (drivers/identity.py): the serial number, holding
# 0x0000-0x0006 "InverterSN". The model is not a register of the protocol.
IDENTITY_MAP: Final = identity_map(
    "solax_hybrid",
    f"{SOURCE}: holding 0x0000-0x0006 InverterSN",
    (
        text_point(
            IdentityField.SERIAL_NUMBER, RegisterType.HOLDING, SN_POINT_ADDRESS, SN_REGISTERS
        ),
    ),
)


def _signature(series: str) -> Signature:
    # Holding 0x0000: "H" and the series digit; input 0x0007 grid frequency (0.01 Hz,
    # on an X3 the word stays 0 but 0x006D carries it) and 0x0009 run mode 0..10.
    frequency = 0x0007 if series == "X1" else 0x006D
    return Signature(
        f"SolaX {series} hybrid (serial number 'H...' at holding 0, run mode at input 0x0009)",
        (
            Check(RegisterType.HOLDING, 0x0000, U16, SN_FIRST_WORD_LOW, SN_FIRST_WORD_HIGH),
            Check(RegisterType.INPUT, frequency, U16, 45.0, 65.0, scale=0.01),
            Check(RegisterType.INPUT, 0x0009, U16, 0, 10),
        ),
    )


_NOTES: Final = (
    "Modbus RTU on the inverter's COM/485 port: 19200 8N1, unit 1. Modbus TCP (port "
    "502, unit 1) only through a SolaX monitoring module (Pocket WiFi 3.0 / LAN), "
    "which bridges to the same registers.",
    "32-bit values are low word first (the document: 'little endian format').",
    "The document asks for at least 1 s between two requests (the profile keeps "
    "it) and a 1 s response timeout: a poll is two requests, about 1 s of bus time; "
    "sample every few seconds.",
    "Battery values (T-BAT, Triple Power) come through the inverter; grid values "
    "need the SolaX meter or CT on the inverter.",
)

PROFILES: Final = (
    DeviceProfile(
        name="solax_x1_hybrid",
        vendor="SolaX",
        models="X1-Hybrid G3 and G4 (single phase), protocol V3.21",
        role=Role.INVERTER,
        register_map=SOLAX_X1,
        source=SOURCE,
        transports=frozenset({BusType.RTU, BusType.TCP}),
        command_gap_s=COMMAND_GAP_S,
        config_name="inverter",
        signature=_signature("X1"),
        identity=IDENTITY_MAP,
        notes=_NOTES,
    ),
    DeviceProfile(
        name="solax_x3_hybrid",
        vendor="SolaX",
        models="X3-Hybrid G3 and G4 (three phase), protocol V3.21",
        role=Role.INVERTER,
        register_map=SOLAX_X3,
        source=SOURCE,
        transports=frozenset({BusType.RTU, BusType.TCP}),
        command_gap_s=COMMAND_GAP_S,
        config_name="inverter",
        signature=_signature("X3"),
        identity=IDENTITY_MAP,
        notes=_NOTES,
    ),
)
