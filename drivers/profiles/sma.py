"""SMA Sunny Boy / Sunny Tripower (PV) and Sunny Island / Sunny Boy Storage (battery).

Sources, SMA's own Modbus profile (not its SunSpec one, which the same devices
serve at unit id 126 and the ``sunspec`` profile reads):

- "SMA and SunSpec Modbus Interface, SUNNY BOY / SUNNY BOY STORAGE / SUNNY
  TRIPOWER", Technical Information SMA-Modbus-general-TI-en-10, version 1.0:
  3.5.1 the unit id is "freely configurable within the area 3 to 123. The default
  value is 3"; 3.5.4 registers are big-endian, a 32-bit value high word first;
  3.5.5 functions 0x03 and 0x04 read 1 to 125 registers; "If a data block is read
  and if at least one register defined in the Modbus profile can be determined in
  its data range, an answer is returned. If this data block also contains Modbus
  registers that are not defined in the Modbus profile, NaN is used for the query
  values [...]. If none of the Modbus registers are defined in the data range [...]
  a Modbus exception is generated"; 3.5.7 "SMA Data Types and NaN Values": S32
  0x8000 0000, U32 0xFFFF FFFF, and for status values (TAGLIST) "only the lower 24
  bits [...] are used", NaN 0xFFFFFD; 3.5.8 FIX0..FIX3 are 0..3 decimals, TEMP is
  degrees Celsius with one decimal; 3.6 TCP port 502.
- The per-device lists "Modbus parameters and measured values":
  MODBUS-HTML_STP8.0-10.0-3AV-40_GG10_V10 (Sunny Tripower 8.0/10.0) for
  ``sma_inverter`` and MODBUS-HTML_SI44M-80H-13_32009R_V10 (Sunny Island
  4.4M/6.0H/8.0H-13) for ``sma_storage``. Register numbers there are the PDU
  addresses themselves (30775 is read at 30775), as evcc's sma templates and
  openWB's SMA modules read them. Every value below is in both the list and the
  family's other models unless noted; the Sunny Boy lists (e.g.
  MODBUS-HTML_SBxx-1AV-41) carry the same registers for one phase and one or
  two DC inputs.

NaN means "not available": an inverter at night gives NaN power (evcc decodes
30775 as ``int32nan``, openWB treats 0x80000000 as 0 W). The maps set
``na_markers`` so such a value is left out of the reading; ``derive`` then says
0 W where the device's condition (30201) is "Off" and it gives no power.

Signs: 30775 "Power" is the AC power the device delivers, > 0 delivering, the
protocol's convention (the Sunny Island's is > 0 discharging: openWB negates it
to get its own "> 0 charging"). 30865 "Power drawn" and 30867 "Power grid
feed-in" are two non-negative values from the SMA Energy Meter / Home Manager:
``grid.power_w`` = drawn - fed. The battery's power is 31395 "Present battery
discharge" - 31393 "Present battery charge" (both >= 0, as openWB reads them for
the Sunny Boy Storage). 30843 "Battery current" is signed, but the list does not
say which way: ``battery.current_a`` takes its magnitude and the direction of
31393/31395.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from drivers.bus import BusType
from drivers.identity import IdentityField, code_point, identity_map, number_point
from drivers.profile import PointBuilder, RegisterImage, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

SOURCE: Final = (
    "SMA Modbus Interface TI SMA-Modbus-general-TI-en-10 (V1.0); MODBUS-HTML lists "
    "STP8.0-10.0-3AV-40_GG10_V10 and SI44M-80H-13_32009R_V10"
)
# TI 3.5.5: "Read Holding Registers 0x03 / Read Input Registers 0x04: 1 to 125".
SMA_MAX_REGISTERS: Final = 125
# TI 3.5.5: undefined registers inside a block read as NaN, so a request may bridge
# any gap: a round trip costs more than the registers it carries.
SMA_MAX_GAP: Final = SMA_MAX_REGISTERS
# TI 3.5.1: the SMA profile's default unit id (the SunSpec profile is at it + 123).
SMA_DEFAULT_UNIT: Final = 3
# TI 3.5.7: a status (TAGLIST) value uses the lower 24 bits; NaN is 0xFFFFFD.
STATUS_NAN: Final = 0xFFFFFD
# What an undefined register inside a read gives (TI 3.5.5: "NaN"); the TI does not
# say which word, U16's NaN 0xFFFF (3.5.7) stands in.
UNDEFINED_WORD: Final = 0xFFFF

# "Device class" 30051 (TAGLIST): 8001 "Solar Inverters", 8007 "Battery Inverter".
DEVICE_CLASS_PV: Final = 8001
DEVICE_CLASS_BATTERY: Final = 8007
# "Device type" 30053: 9347 SUNNY TRIPOWER 8.0 (STP8.0-3AV-40), 9474 SI4.4M-13.
DEVICE_TYPE_STP8: Final = 9347
DEVICE_TYPE_SI44M: Final = 9474
# 30053 "Device type" (Nameplate.Model, U32 TAGLIST) -> model: the codes the two
# lists give, named by the type designation each prints in brackets. Sources: SMA
# MODBUS-HTML STP8.0-10.0-3AV-40_GG10_V10 (9347-9348) and SI44M-80H-13_32009R_V10
# (9331-9334, 9474-9476, 9486), modbuslist_en.html, register 30053. TI 3.5.7: a
# TAGLIST's NaN 0xFFFFFD is "not available" (named "": no model). Any other code
# shows as the number.
DEVICE_TYPE_CODES: Final[Mapping[int, str]] = {
    9331: "SI 3.0M-12",
    9332: "SI 4.4M-12",
    9333: "SI 6.0H-12",
    9334: "SI 8.0H-12",
    9347: "STP8.0-3AV-40",
    9348: "STP10.0-3AV-40",
    9474: "SI4.4M-13",
    9475: "SI6.0H-13",
    9476: "SI8.0H-13",
    9486: "SI5.0H-13",
    STATUS_NAN: "",
}

# 30201 "Condition" (Operation.Health), both lists: 35 Fault, 303 Off, 307 Ok, 455 Warning.
CONDITIONS: Final = ((35, "fault"), (303, "off"), (307, "ok"), (455, "warning"))
# 30955 "Battery oper. status" (SI list): 2292 Charge battery, 2293 Discharge battery.
BATTERY_STATES: Final = ((2292, "charging"), (2293, "discharging"))

U32, S32 = DataType.UINT32, DataType.INT32


# Read with 0x04; the devices answer 0x03 alike.
_reg: Final = PointBuilder(RegisterType.INPUT)


# FIX2 -> x 0.01, FIX3 -> x 0.001, TEMP -> x 0.1 (TI 3.5.8).
FIX1, FIX2, FIX3 = 0.1, 0.01, 0.001

_CONDITION: Final = _reg("Condition", 30201, U32, "inverter.state", states=CONDITIONS)
_AC: Final = (
    _reg("Power", 30775, S32, "inverter.ac_power_w"),
    _reg("Grid voltage phase L1", 30783, U32, "inverter.ac_voltage_v", FIX2),
    _reg("Grid voltage phase L2", 30785, U32, "extra.inverter_ac_voltage_l2_v", FIX2),
    _reg("Grid voltage phase L3", 30787, U32, "extra.inverter_ac_voltage_l3_v", FIX2),
    _reg("Grid frequency", 30803, U32, "inverter.ac_frequency_hz", FIX2),
)
# The SMA Energy Meter / Sunny Home Manager as the device sees it (NaN without one).
_METER: Final = (
    _reg("Counter reading of power drawn counter", 30581, U32, "grid.import_energy_wh"),
    _reg("Grid feed-in counter reading", 30583, U32, "grid.export_energy_wh"),
    _reg("Power drawn", 30865, S32, "extra.grid_power_drawn_w"),
    _reg("Power grid feed-in", 30867, S32, "extra.grid_power_fed_w"),
)
# "Serial number" 30057 (Nameplate.SerNum, U32, RAW, RO), in both lists, and 30053
# "Device type" (a TAGLIST code, the model by DEVICE_TYPE_CODES): read once per
# connection as the device's identity (drivers/identity.py), in one request. 30059
# "Software package" is an SMA FW word, not a text, and is not read.
DEVICE_TYPE: Final = 30053
SERIAL_NUMBER: Final = 30057
# Nameplate values a scan reads (30051, signature) and the simulator serves.
_NAMEPLATE_PV: Final = (
    _reg("Device class", 30051, U32, None, constant=DEVICE_CLASS_PV),
    _reg("Device type", DEVICE_TYPE, U32, None, constant=DEVICE_TYPE_STP8),
    _reg("Serial number", SERIAL_NUMBER, U32, None, constant=3_012_345_678),
)
_NAMEPLATE_BATTERY: Final = (
    _reg("Device class", 30051, U32, None, constant=DEVICE_CLASS_BATTERY),
    _reg("Device type", DEVICE_TYPE, U32, None, constant=DEVICE_TYPE_SI44M),
    _reg("Serial number", SERIAL_NUMBER, U32, None, constant=3_012_345_679),
)
IDENTITY_MAP: Final = identity_map(
    "sma",
    f"{SOURCE}: 30053 Device type (U32, TAGLIST), 30057 Serial number (U32, RAW)",
    (
        code_point(IdentityField.MODEL, RegisterType.INPUT, DEVICE_TYPE, U32, DEVICE_TYPE_CODES),
        number_point(IdentityField.SERIAL_NUMBER, RegisterType.INPUT, SERIAL_NUMBER, U32),
    ),
    max_count=SMA_MAX_REGISTERS,
)


def _number(values: Mapping[str, object], name: str) -> float | None:
    value = values.get(name)
    return value if isinstance(value, float) else None


def _common(sections: Sections) -> None:
    """Condition NaN, night power, grid power from the meter's two halves."""
    inverter = sections.setdefault("inverter", {})
    if inverter.get("state") == f"code_{STATUS_NAN}":
        del inverter["state"]  # TI 3.5.7: the status NaN
    if inverter.get("state") == "off" and "ac_power_w" not in inverter:
        inverter["ac_power_w"] = 0.0  # Off, power NaN: the device delivers nothing
    extra = sections.get("extra", {})
    drawn = _number(extra, "grid_power_drawn_w")
    fed = _number(extra, "grid_power_fed_w")
    if drawn is not None and fed is not None:
        sections.setdefault("grid", {})["power_w"] = drawn - fed


def _derive_pv(sections: Sections) -> None:
    _common(sections)
    extra = sections.get("extra", {})
    powers = [_number(extra, f"pv{n}_power_w") for n in (1, 2)]
    currents = [_number(extra, f"pv{n}_current_a") for n in (1, 2)]
    solar = sections.setdefault("solar", {})
    if any(p is not None for p in powers):
        total = sum(p for p in powers if p is not None)
        solar["pv_power_w"] = max(total, 0.0)
        sections.setdefault("inverter", {})["dc_power_w"] = total
    elif sections.get("inverter", {}).get("state") == "off":
        solar["pv_power_w"] = 0.0  # at night the DC inputs read NaN
    if any(c is not None for c in currents):
        solar["pv_current_a"] = sum(c for c in currents if c is not None)
    volts = _number(extra, "pv1_voltage_v")
    if volts is not None:
        solar["pv_voltage_v"] = volts


def _derive_storage(sections: Sections) -> None:
    _common(sections)
    extra = sections.get("extra", {})
    charge = _number(extra, "battery_charge_power_w")
    discharge = _number(extra, "battery_discharge_power_w")
    battery = sections.setdefault("battery", {})
    if battery.get("state") == f"code_{STATUS_NAN}":
        del battery["state"]
    power = None
    if charge is not None and discharge is not None:
        power = discharge - charge
        battery["power_w"] = power
    amps = extra.pop("battery_current_a", None)
    if isinstance(amps, float) and power is not None:
        # 30843's own sign is not documented: its size, the direction of 31393/31395.
        battery["current_a"] = math.copysign(abs(amps), power) if power else 0.0


SMA_INVERTER: Final = RegisterMap(
    name="sma_inverter",
    source=SOURCE,
    max_count=SMA_MAX_REGISTERS,
    max_gap=SMA_MAX_GAP,
    na_markers=True,
    derive=_derive_pv,
    points=(
        _CONDITION,
        _reg("Total yield", 30529, U32, "inverter.energy_total_wh"),
        _reg("Daily yield", 30535, U32, "solar.energy_today_wh"),
        _METER[0],
        _METER[1],
        # "DC current/voltage/power input", input A (FIX3 A, FIX2 V, W).
        _reg("DC current input A", 30769, S32, "extra.pv1_current_a", FIX3),
        _reg("DC voltage input A", 30771, S32, "extra.pv1_voltage_v", FIX2),
        _reg("DC power input A", 30773, S32, "extra.pv1_power_w"),
        *_AC[:1],
        _reg("Power L1", 30777, S32, "extra.inverter_phase_power_l1_w"),
        _reg("Power L2", 30779, S32, "extra.inverter_phase_power_l2_w"),
        _reg("Power L3", 30781, S32, "extra.inverter_phase_power_l3_w"),
        *_AC[1:],
        _METER[2],
        _METER[3],
        _reg("Internal temperature", 30953, S32, "inverter.temperature_c", FIX1),
        # The same three for input B.
        _reg("DC current input B", 30957, S32, "extra.pv2_current_a", FIX3),
        _reg("DC voltage input B", 30959, S32, "extra.pv2_voltage_v", FIX2),
        _reg("DC power input B", 30961, S32, "extra.pv2_power_w"),
    ),
)

SMA_STORAGE: Final = RegisterMap(
    name="sma_storage",
    source=SOURCE,
    max_count=SMA_MAX_REGISTERS,
    max_gap=SMA_MAX_GAP,
    na_markers=True,
    derive=_derive_storage,
    points=(
        _CONDITION,
        _METER[0],
        _METER[1],
        # "Absorbed energy" / "Released energy" (Metering.WhIn / WhOut): the AC energy
        # the battery inverter took in and gave out, Wh.
        _reg("Absorbed energy", 30595, U32, "extra.battery_ac_charged_energy_wh"),
        _reg("Released energy", 30597, U32, "extra.battery_ac_discharged_energy_wh"),
        *_AC,
        _reg("Battery current", 30843, S32, "extra.battery_current_a", FIX3),
        _reg("Current battery state of charge", 30845, U32, "battery.soc_pct"),
        _reg("Battery temperature", 30849, S32, "battery.temperature_c", FIX1),
        _reg("Battery voltage", 30851, U32, "battery.voltage_v", FIX2),
        _METER[2],
        _METER[3],
        _reg("Battery oper. status", 30955, U32, "battery.state", states=BATTERY_STATES),
        _reg("Present battery charge", 31393, U32, "extra.battery_charge_power_w"),
        _reg("Present battery discharge", 31395, U32, "extra.battery_discharge_power_w"),
    ),
)

# What the simulator serves: the polled points and the nameplate a scan reads.
SMA_INVERTER_SERVED: Final = RegisterMap(
    name="sma_inverter",
    source=SOURCE,
    max_count=SMA_MAX_REGISTERS,
    na_markers=True,
    points=_NAMEPLATE_PV + SMA_INVERTER.points,
)
SMA_STORAGE_SERVED: Final = RegisterMap(
    name="sma_storage",
    source=SOURCE,
    max_count=SMA_MAX_REGISTERS,
    na_markers=True,
    points=_NAMEPLATE_BATTERY + SMA_STORAGE.points,
)


def status_nan(reg_map: RegisterMap, image: RegisterImage) -> None:
    """Status points left "not available" as the devices give them: 0x00FFFFFD (TI 3.5.7).

    ``encode_map`` writes U32's NaN (0xFFFFFFFF) for a value the plant does not
    give; an SMA device's status registers say 0xFFFFFD instead.
    """
    table = image.get(RegisterType.INPUT, {})
    for point in reg_map.points:
        if point.states and point.data_type is U32:
            words = (table.get(point.address), table.get(point.address + 1))
            if words == (0xFFFF, 0xFFFF):
                table[point.address] = STATUS_NAN >> 16
                table[point.address + 1] = STATUS_NAN & 0xFFFF


def _class_check(device_class: int) -> Check:
    return Check(RegisterType.INPUT, 30051, U32, device_class, device_class)


_NOTES: Final = (
    "The Modbus server is off by default: enable Modbus TCP (port 502) on the device "
    "(Sunny Portal or its web interface, installer access).",
    "Unit id 3 by default (configurable 3-123); the same device's SunSpec profile "
    "answers at that id + 123 (126) and can be read with profile 'sunspec' instead.",
    "Values the device cannot give read as NaN (an inverter at night): they are "
    "left out, and the power is 0 W while its condition is 'Off'.",
    "Grid power, import and export come from an SMA Energy Meter or Sunny Home Manager "
    "in the device's system; without one they are left out.",
)

PROFILES: Final = (
    DeviceProfile(
        name="sma_inverter",
        vendor="SMA",
        models="Sunny Boy, Sunny Tripower (SMA Modbus profile)",
        role=Role.INVERTER,
        register_map=SMA_INVERTER,
        source=SOURCE,
        transports=frozenset({BusType.TCP}),
        default_unit=SMA_DEFAULT_UNIT,
        identity=IDENTITY_MAP,
        # Other SMA devices of a plant are set to the next ids (the range is 3-123).
        units=(4, 5, 6),
        config_name="inverter",
        signature=Signature(
            "SMA PV inverter (device class 8001 at 30051, condition at 30201)",
            (_class_check(DEVICE_CLASS_PV), Check(RegisterType.INPUT, 30201, U32, 35, 455)),
        ),
        notes=_NOTES,
    ),
    DeviceProfile(
        name="sma_storage",
        vendor="SMA",
        models="Sunny Island, Sunny Boy Storage (SMA Modbus profile)",
        role=Role.BATTERY,
        register_map=SMA_STORAGE,
        source=SOURCE,
        transports=frozenset({BusType.TCP}),
        default_unit=SMA_DEFAULT_UNIT,
        identity=IDENTITY_MAP,
        units=(4, 5, 6),
        config_name="battery",
        signature=Signature(
            "SMA battery inverter (device class 8007 at 30051, state of charge at 30845)",
            (_class_check(DEVICE_CLASS_BATTERY), Check(RegisterType.INPUT, 30845, U32, 0, 100)),
        ),
        notes=(
            *_NOTES,
            "Battery power is 'present discharge' (31395) minus 'present charge' (31393).",
        ),
    ),
)
