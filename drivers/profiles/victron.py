"""Victron GX devices (Cerbo GX, CCGX, Venus GX, Ekrano) over Modbus TCP: one profile per service.

Source: Victron Energy "CCGX-Modbus-TCP-register-list.xlsx", Rev 53 (sheet "Field
list": service, address, type, scalefactor, dbus path, remarks; sheet "Unit ID
mapping"), as shipped with the GX's Modbus TCP server (victronenergy/dbus_modbustcp
v1.0.101, whose attributes.csv holds the same rows). A value is ``raw /
scalefactor``: 840 "Battery Voltage (System)" uint16, scalefactor 10, is 0.1 V;
"Input power 1" (vebus 12), scalefactor 0.1, is 10 W; a negative scalefactor
(-10, consumed Ah) flips the sign.

Unit id per service: the GX is one Modbus TCP server in front of many devices.
"Use unit-id 100 for the com.victronenergy.system data"; every other service
(a Multi on VE.Bus, a battery monitor or CAN-bus BMS, each MPPT) answers at its
own unit id, "in general [...] equal to the device instance" (sheet "Unit ID
mapping"; Venus 2.60 and later list them under Settings > Integrations > Modbus
TCP server > Available services). The sheet keeps the ids older firmware used
and most installations still show: 225 CAN-bus BMS, 226 Cerbo GX VE.Direct
port 1, 227 Cerbo GX VE.Bus port, 246 CCGX VE.Bus port, 247 CCGX VE.Direct 1, ...
Each profile's ``default_unit`` is the most common of these and ``units`` the
others a scan should try.

How the GX answers (dbus_modbustcp: backend.cpp, mappings.cpp): functions 0x03 and
0x04 read the same registers, 1 to 125 of them (else exception 03); every
register of a read must be listed for the service, else exception 02; a value
the device does not give reads 0 (no NaN marker); a RESERVED register reads
0xFFFF; a service missing at the unit id gives exception 0x0A. Rev 53 "Add
reserved ranges to system range (to allow fetching blocks)": before it, a read
spanning 827-839, 847-849, 852-854 or 856-859 at unit 100 was refused, so the
system map lists them as holes and reads around them.

Signs (remarks of the list): 820-822 "Power supplied by Grid to system" (> 0
importing, the protocol's sign); 841/842 and battery 261 "Positive: battery being
charged" and vebus 27 "Positive: current flowing from the Multi to the dc
system": the opposite of the protocol's "> 0 discharging", so those scales are
negative. vebus 6-8 / 12-14 "Positive: current flowing from mains to Multi",
18-20 / 23-25 "from Multi to the load".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from drivers.bus import BusType
from drivers.identity import IdentityField, identity_map, text_point
from drivers.planner import Hole
from drivers.profile import PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

SOURCE: Final = (
    "Victron CCGX-Modbus-TCP-register-list.xlsx Rev 53, sheets Field list, Unit ID mapping"
)
HOLDING: Final = RegisterType.HOLDING
U16, S16 = DataType.UINT16, DataType.INT16
# dbus_modbustcp backend.cpp: "quantity == 0 || quantity > 125" -> exception 03.
GX_MAX_REGISTERS: Final = 125
# Every register in a service's range is listed (RESERVED ones read 0xFFFF), so a
# request may bridge any gap that is not a hole: a TCP round trip costs more.
GX_MAX_GAP: Final = GX_MAX_REGISTERS

# Sheet "Unit ID mapping": 100 = "all registers listed as com.victronenergy.system".
SYSTEM_UNIT: Final = 100
CAN_BMS_UNIT: Final = 225  # "CAN-bus BMS" (device instance 512)
CERBO_VEDIRECT1_UNIT: Final = 226  # "Cerbo GX VE.Direct port 1 (ttyS7)"
CERBO_VEBUS_UNIT: Final = 227  # "Cerbo GX VE.Bus port (ttyS4)"

# 844 /Dc/Battery/State: 0=idle;1=charging;2=discharging.
SYSTEM_BATTERY_STATES: Final = ((0, "idle"), (1, "charging"), (2, "discharging"))
# vebus 31 /State: 0=Off;1=Low Power;2=Fault;3=Bulk;4=Absorption;5=Float;6=Storage;
# 7=Equalize;8=Passthru;9=Inverting;10=Power assist;11=Power supply;252=External control.
VEBUS_STATES: Final = (
    (0, "off"),
    (1, "low_power"),
    (2, "fault"),
    (3, "bulk"),
    (4, "absorption"),
    (5, "float"),
    (6, "storage"),
    (7, "equalize"),
    (8, "passthru"),
    (9, "inverting"),
    (10, "power_assist"),
    (11, "power_supply"),
    (252, "external_control"),
)


# Points as the list gives them: value = raw / scalefactor (negative: sign flipped);
# read with 0x03, the GX answers 0x04 alike.
_reg: Final = PointBuilder(HOLDING, divisor=True)


def _numbers(values: Mapping[str, object], names: list[str]) -> list[float]:
    return [v for n in names if isinstance(v := values.get(n), float)]


def _derive_system(sections: Sections) -> None:
    grid = sections.get("grid", {})
    phases = grid.get("phase_power_w")
    if isinstance(phases, list):
        grid["power_w"] = sum(phases)
    extra = sections.get("extra", {})
    pv = _numbers(
        extra,
        ["pv_dc_power_w"] + [f"pv_ac_{s}_l{n}_w" for s in ("output", "input") for n in (1, 2, 3)],
    )
    if pv:
        sections.setdefault("solar", {})["pv_power_w"] = sum(pv)
    loads = _numbers(extra, [f"ac_consumption_l{n}_w" for n in (1, 2, 3)])
    if loads:
        extra["ac_consumption_w"] = sum(loads)


def _derive_vebus(sections: Sections) -> None:
    extra = sections.get("extra", {})
    out = _numbers(extra, [f"vebus_out_power_l{n}_w" for n in (1, 2, 3)])
    into = _numbers(extra, [f"vebus_in_power_l{n}_w" for n in (1, 2, 3)])
    if out and into:
        # What the Multi adds to the AC side: its loads less what mains gives it.
        sections.setdefault("inverter", {})["ac_power_w"] = sum(out) - sum(into)


# The GX's identity (drivers/identity.py): "Serial (System)" 800, string[6] (dbus
# /Serial; dbus_modbustcp attributes.csv "com.victronenergy.system,/Serial,s,,800,
# string[6]"), two Latin-1 characters a register, high byte first, NUL padded
# (mappings.cpp). The other services' maps (vebus, battery, solarcharger) have no
# serial-number register in the list, so their identity is the vendor only.
SYSTEM_SERIAL: Final = 800
SYSTEM_SERIAL_REGISTERS: Final = 6
SYSTEM_IDENTITY: Final = identity_map(
    "victron_system",
    f"{SOURCE}: com.victronenergy.system 800 Serial (System), string[6]",
    (text_point(IdentityField.SERIAL_NUMBER, HOLDING, SYSTEM_SERIAL, SYSTEM_SERIAL_REGISTERS),),
    max_count=GX_MAX_REGISTERS,
)

SYSTEM: Final = RegisterMap(
    name="victron_system",
    source=SOURCE,
    max_count=GX_MAX_REGISTERS,
    max_gap=GX_MAX_GAP,
    holes=(
        # RESERVED (and, at 830-835, INTERNAL time and firmware) registers not
        # registered before Rev 53 (module docstring): refused by older firmware.
        Hole(HOLDING, 827, 839),
        Hole(HOLDING, 847, 849),
        Hole(HOLDING, 852, 854),
        Hole(HOLDING, 856, 859),
    ),
    derive=_derive_system,
    points=(
        # "PV - AC-coupled on output/input L1-L3" (/Ac/PvOnOutput, /Ac/PvOnGrid), W.
        *(
            _reg(f"PV - AC-coupled on output L{n}", 807 + n, U16, f"extra.pv_ac_output_l{n}_w")
            for n in (1, 2, 3)
        ),
        *(
            _reg(f"PV - AC-coupled on input L{n}", 810 + n, U16, f"extra.pv_ac_input_l{n}_w")
            for n in (1, 2, 3)
        ),
        # "AC Consumption L1-L3" (/Ac/Consumption), W.
        *(
            _reg(f"AC Consumption L{n}", 816 + n, U16, f"extra.ac_consumption_l{n}_w")
            for n in (1, 2, 3)
        ),
        # "Grid L1-L3", int16 W, "Power supplied by Grid to system".
        *(_reg(f"Grid L{n}", 819 + n, S16, f"grid.phase_power_w[{n - 1}]") for n in (1, 2, 3)),
        _reg("Battery Voltage (System)", 840, U16, "battery.voltage_v", 10),
        # "Positive: battery being charged": scalefactor 10, sign flipped.
        _reg("Battery Current (System)", 841, S16, "battery.current_a", -10),
        _reg("Battery Power (System)", 842, S16, "battery.power_w", -1),
        _reg("Battery State of Charge (System)", 843, U16, "battery.soc_pct"),
        _reg("Battery state (System)", 844, U16, "battery.state", states=SYSTEM_BATTERY_STATES),
        # "Summation of output power of all connected Solar Chargers".
        _reg("PV - DC-coupled power", 850, U16, "extra.pv_dc_power_w"),
    ),
)

BATTERY: Final = RegisterMap(
    name="victron_battery",
    source=SOURCE,
    max_count=GX_MAX_REGISTERS,
    max_gap=GX_MAX_GAP,
    # Rev 53 lists nothing for the battery service from 332 to 1281 (1282 /State
    # starts its BMS block): a read there is refused.
    holes=(Hole(HOLDING, 332, 1281),),
    points=(
        # 258: "Older 16-bit variant of 256" (int32, newer firmware only).
        _reg("Battery power", 258, S16, "battery.power_w", -1),
        _reg("Battery voltage", 259, U16, "battery.voltage_v", 100),
        _reg("Current", 261, S16, "battery.current_a", -10),  # "Positive: [...] charged"
        _reg("Battery temperature", 262, S16, "battery.temperature_c", 10),
        # "Always negative (to have the same sign as the current)": Ah taken out.
        _reg("Consumed Amphours", 265, U16, "extra.bms_consumed_ah", -10),
        _reg("State of charge", 266, U16, "battery.soc_pct", 10),
        _reg("Charge cycles", 284, U16, "extra.bms_cycle_count"),
        # kWh, scalefactor 10 -> Wh x 100 ("Not supported by CAN.Bus BMS batteries").
        _reg("Discharged Energy", 301, U16, "extra.bms_discharged_energy_wh", 0.01),
        _reg("Charged Energy", 302, U16, "extra.bms_charged_energy_wh", 0.01),
        _reg("State of health", 304, U16, "battery.soh_pct", 10),
        _reg("Capacity", 309, U16, "extra.bms_capacity_ah", 10),
        _reg("System; minimum cell voltage", 1290, U16, "battery.cell_voltage_min_v", 100),
        _reg("System; maximum cell voltage", 1291, U16, "battery.cell_voltage_max_v", 100),
    ),
)

VEBUS: Final = RegisterMap(
    name="victron_vebus",
    source=SOURCE,
    max_count=GX_MAX_REGISTERS,
    max_gap=GX_MAX_GAP,
    derive=_derive_vebus,
    points=(
        *(
            _reg(f"Input voltage phase {n}", 2 + n, U16, f"extra.vebus_in_voltage_l{n}_v", 10)
            for n in (1, 2, 3)
        ),
        # "Positive: current flowing from mains to Multi".
        *(
            _reg(f"Input current phase {n}", 5 + n, S16, f"extra.vebus_in_current_l{n}_a", 10)
            for n in (1, 2, 3)
        ),
        _reg("Input frequency 1", 9, S16, "extra.vebus_in_frequency_hz", 100),
        # Scalefactor 0.1: 10 W per count; "Sign meaning equal to Input current".
        *(
            _reg(f"Input power {n}", 11 + n, S16, f"extra.vebus_in_power_l{n}_w", 0.1)
            for n in (1, 2, 3)
        ),
        _reg("Output voltage phase 1", 15, U16, "inverter.ac_voltage_v", 10),
        _reg("Output voltage phase 2", 16, U16, "extra.vebus_out_voltage_l2_v", 10),
        _reg("Output voltage phase 3", 17, U16, "extra.vebus_out_voltage_l3_v", 10),
        # "Positive: current flowing from Multi to the load".
        _reg("Output current phase 1", 18, S16, "inverter.ac_current_a", 10),
        _reg("Output current phase 2", 19, S16, "extra.vebus_out_current_l2_a", 10),
        _reg("Output current phase 3", 20, S16, "extra.vebus_out_current_l3_a", 10),
        _reg("Output frequency", 21, S16, "inverter.ac_frequency_hz", 100),
        *(
            _reg(f"Output power {n}", 22 + n, S16, f"extra.vebus_out_power_l{n}_w", 0.1)
            for n in (1, 2, 3)
        ),
        _reg("Battery voltage", 26, U16, "battery.voltage_v", 100),
        # "Positive: current flowing from the Multi to the dc system" (charging):
        # flipped, > 0 when the Multi draws from the battery.
        _reg("Battery current", 27, S16, "extra.vebus_dc_current_a", -10),
        _reg("Phase count", 28, U16, "extra.vebus_phase_count"),
        _reg("VE.Bus state of charge", 30, U16, "battery.soc_pct", 10),
        _reg("VE.Bus state", 31, U16, "inverter.state", states=VEBUS_STATES),
        _reg("Battery temperature", 61, S16, "battery.temperature_c", 10),
    ),
)

SOLARCHARGER: Final = RegisterMap(
    name="victron_solarcharger",
    source=SOURCE,
    max_count=GX_MAX_REGISTERS,
    max_gap=GX_MAX_GAP,
    points=(
        _reg("Battery voltage", 771, U16, "extra.charger_battery_voltage_v", 100),
        _reg("Battery current", 772, S16, "extra.charger_battery_current_a", 10),
        _reg("Battery temperature", 773, S16, "extra.charger_temperature_c", 10),  # VE.Can only
        # 0=Off;2=Fault;3=Bulk;4=Absorption;5=Float;6=Storage;7=Equalize;11=Other;252=Hub-1.
        _reg("Charge state", 775, U16, "extra.charger_state_code"),
        _reg("PV voltage", 776, U16, "solar.pv_voltage_v", 100),
        _reg("PV current", 777, S16, "solar.pv_current_a", 10),  # "Calculated from [...]"
        # kWh, scalefactor 10 -> Wh x 100.
        _reg("Yield today", 784, U16, "solar.energy_today_wh", 0.01),
        # 789: "Older 16-bit variant" of 792 (uint32 W, newer firmware only): 0.1 W steps
        # up to 6553.5 W, enough for every SmartSolar but the largest MPPT RS.
        _reg("PV power", 789, U16, "solar.pv_power_w", 10),
        # "Energy generated by the solarcharger since last user reset".
        _reg("User yield", 790, U16, "extra.charger_user_yield_wh", 0.01),
    ),
)


def _volts(address: int, scalefactor: float) -> Check:
    """A battery voltage between 8 and 70 V: a 12, 24 or 48 V system."""
    return Check(HOLDING, address, U16, 8.0, 70.0, scale=1.0 / scalefactor)


_GX_NOTES: Final = (
    "Enable Settings > Integrations > Modbus TCP server on the GX (port 502).",
    "Each service answers at its own unit id: the GX lists them under Settings > "
    "Integrations > Modbus TCP server > Available services; set each device's 'unit'.",
    "Values a device does not give read 0 (the GX has no 'not available' marker).",
    "A unit id with no service answers exception 0x0A (gateway path unavailable); "
    "ems edge scan does not count those as devices.",
)

PROFILES: Final = (
    DeviceProfile(
        name="victron_system",
        vendor="Victron Energy",
        models="GX device (Cerbo GX, CCGX, Venus GX): com.victronenergy.system",
        role=Role.GRID,
        register_map=SYSTEM,
        identity=SYSTEM_IDENTITY,
        source=SOURCE,
        transports=frozenset({BusType.TCP}),
        default_unit=SYSTEM_UNIT,
        config_name="gx",
        signature=Signature(
            "Victron GX system service (battery 840-844 at unit 100)",
            (
                _volts(840, 10),
                Check(HOLDING, 843, U16, 0, 100),
                Check(HOLDING, 844, U16, 0, 2),
            ),
        ),
        notes=(
            *_GX_NOTES,
            "The system service sums the whole site: grid per phase, the battery as the "
            "GX sees it, PV (DC chargers' output plus AC-coupled PV inverters).",
            "Older GX firmware refuses reads across the RESERVED registers 827-839, "
            "847-849, 852-854 and 856-859; the map reads around them.",
        ),
    ),
    DeviceProfile(
        name="victron_battery",
        vendor="Victron Energy",
        models="Battery service on a GX: BMV/SmartShunt, Lynx BMS, CAN-bus BMS batteries",
        role=Role.BATTERY,
        register_map=BATTERY,
        source=SOURCE,
        transports=frozenset({BusType.TCP}),
        default_unit=CAN_BMS_UNIT,
        # VE.Direct battery monitors: Cerbo ports 1-3, CCGX ports, USB.
        units=(226, 224, 223, 245, 247, 239, 238),
        config_name="bms",
        signature=Signature(
            "Victron GX battery service (voltage 259, state of charge 266)",
            (
                _volts(259, 100),
                Check(HOLDING, 266, U16, 0.0, 100.0, scale=0.1),
                Check(HOLDING, 262, S16, -40.0, 80.0, scale=0.1),
            ),
        ),
        notes=(
            *_GX_NOTES,
            "Energy counters and charge cycles are 0 for CAN-bus BMS batteries "
            "(the list: 'Not supported by CAN.Bus BMS batteries').",
        ),
    ),
    DeviceProfile(
        name="victron_vebus",
        vendor="Victron Energy",
        models="VE.Bus inverter/chargers on a GX: MultiPlus, MultiPlus-II, Quattro, EasySolar",
        role=Role.INVERTER,
        register_map=VEBUS,
        source=SOURCE,
        transports=frozenset({BusType.TCP}),
        default_unit=CERBO_VEBUS_UNIT,
        # CCGX VE.Bus port, MultiPlus-II GX, Venus GX.
        units=(246, 228, 242),
        config_name="multi",
        signature=Signature(
            "Victron GX VE.Bus service (DC voltage 26, phase count 28, state 31)",
            (
                _volts(26, 100),
                Check(HOLDING, 28, U16, 1, 3),
                Check(HOLDING, 31, U16, 0, 252),
            ),
        ),
        notes=(
            *_GX_NOTES,
            "inverter.ac_power_w is what the Multi adds to AC: output power less input power.",
        ),
    ),
    DeviceProfile(
        name="victron_solarcharger",
        vendor="Victron Energy",
        models="Solar charger service on a GX: BlueSolar / SmartSolar MPPT, MPPT RS",
        role=Role.SOLAR,
        register_map=SOLARCHARGER,
        source=SOURCE,
        transports=frozenset({BusType.TCP}),
        default_unit=CERBO_VEDIRECT1_UNIT,
        # Cerbo VE.Direct 2-3, MultiPlus-II GX, USB, Venus GX and CCGX VE.Direct ports.
        units=(224, 223, 229, 230, 239, 238, 243, 245, 247),
        config_name="mppt",
        signature=Signature(
            "Victron GX solar charger service (battery 771, charge state 775, PV 776)",
            (
                _volts(771, 100),
                Check(HOLDING, 775, U16, 0, 252),
                Check(HOLDING, 776, U16, 0.0, 250.0, scale=0.01),
            ),
        ),
        notes=(
            *_GX_NOTES,
            "PV power is the 16-bit register 789 (up to 6553.5 W per charger).",
        ),
    ),
)
