"""Deye (and Sunsynk, the same hardware) low-voltage hybrid inverters, RS485 Modbus-RTU.

Sources: Deye "MODBUS RTU protocol" for the single-phase energy storage
inverters (SUN-xK-SG01LP1, Sunsynk 3.6-8 kW; the V105 table) and "MODBUS RTU
three-phase energy storage communication protocol" (SUN-xK-SG04LP3; V104
"the AC measurement data register is added to 32 bit, the original register is
used as the lower 16 bits", registers 687-709). Both are holding registers
read with function 03 (writes with 0x10), one big-endian word each, at the
addresses the tables give (PDU address = table address, no offset). The vendor
PDFs circulate by installers and forums; the tables were read here through
three transcriptions that agree on every register below: kellerza/sunsynk
(definitions/single_phase.py, three_phase_common.py, three_phase_lv.py),
StephanJoubert/home_assistant_solarman (deye_hybrid.yaml, deye_sg04lp3.yaml)
and evcc's templates (deye-storage, deye-hybrid-3p).

Conventions of both tables:
- 32-bit counters are two registers, LOW word at the lower address (evcc
  decodes them ``uint32s``, solarman lists ``[low, high]``): word order CDAB.
  One exception, which all three sources keep: the single-phase total grid
  import is 78 (low) and 80 (high), because 79 is the grid frequency;
  ``derive`` joins the two words.
- Energies are 0.1 kWh (x 100 -> Wh); temperatures are 0.1 degC with an offset
  of 1000 (degC = raw / 10 - 100).
- Signs, as our protocol wants them (docs/protocol.md, "Signs"), so no sign
  flips: grid power > 0 is bought from the grid (evcc reads 169/625 as its grid
  meter, positive import); battery power and current > 0 discharge (evcc reads
  190/590 as its battery, positive discharge); inverter output power > 0 is
  delivered on the AC side.
- Register 0 "device type": 0x0003 single-phase hybrid, 0x0005 low-voltage
  three-phase hybrid (kellerza's identity table; it also lists 0x0103 and
  0x0500 for some firmware, which the scan does not recognise: name the
  profile in the config). The scan signature checks it.

Read limits: Modbus's 125 registers per read. The solarman logger definition
reads 0x0003 x 110 and 0x0096 x 100 in one go; reserved registers inside the
table read 0, and no hole is known. Bus: 9600 8N1 by default, unit id 1
(settable 1-247 on the display).

The battery behind the inverter (a lithium pack on the inverter's CAN/RS485
BMS port, or lead-acid) is read from the inverter's own map: battery SOC,
voltage, current, power, temperature fill ``battery.*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from drivers.bus import BusType
from drivers.identity import IdentityField, identity_map, text_point
from drivers.profile import Point, PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType, WordOrder
from telemetry.roles import Role

SOURCE_LP1: Final = (
    "Deye MODBUS RTU protocol, single-phase energy storage inverter (V105 table), "
    "holding registers 0-194"
)
SOURCE_LP3: Final = (
    "Deye MODBUS RTU three-phase energy storage communication protocol (V104/V105), "
    "holding registers 0-683"
)

# Register 0 "device type" codes (see module docstring).
DEVICE_TYPE_LP1: Final = 0x0003
DEVICE_TYPE_LP3: Final = 0x0005
# degC = raw * 0.1 - 100 (raw offset 1000 at 0.1 degC).
TEMPERATURE_OFFSET: Final = -100.0
# 0.1 kWh -> Wh.
KWH_TENTHS: Final = 100.0
# |P| below this is "idle" for the battery state derived from its power (W).
IDLE_POWER_W: Final = 10.0
# Register 59 (single-phase) / 500 (three-phase) "running state". kellerza's V105
# reading; the older solarman table lists 3 as "fault" and no 4.
RUNNING_STATES: Final = (
    (0, "standby"),
    (1, "self_check"),
    (2, "normal"),
    (3, "alarm"),
    (4, "fault"),
)
# The single-phase total grid import's two words (78 low, 80 high), joined by ``derive``.
IMPORT_LOW: Final = "deye_grid_import_low_word"
IMPORT_HIGH: Final = "deye_grid_import_high_word"

H = RegisterType.HOLDING
U16, S16, U32 = DataType.UINT16, DataType.INT16, DataType.UINT32


# Only the 32-bit counters span two registers: low word first.
_reg: Final = PointBuilder(H, WordOrder.CDAB)


def _energy(name: str, address: int, path: str) -> Point:
    """A 0.1 kWh counter: 32-bit (low word first) when ``address`` is a pair, in Wh."""
    return _reg(name, address, U32, path, KWH_TENTHS)


def _day(name: str, address: int, path: str) -> Point:
    """A 16-bit day counter in 0.1 kWh, in Wh."""
    return _reg(name, address, U16, path, KWH_TENTHS)


def _temperature(name: str, address: int, path: str) -> Point:
    return _reg(name, address, U16, path, 0.1, offset=TEMPERATURE_OFFSET)


def _state(name: str, address: int) -> Point:
    return _reg(name, address, DataType.ENUM16, "inverter.state", states=RUNNING_STATES)


def _number(values: Mapping[str, object], name: str) -> float | None:
    value = values.get(name)
    return float(value) if isinstance(value, float) else None


def _derive_common(sections: Sections) -> None:
    """Solar totals from the MPPT inputs, and the battery's state from its power."""
    extra = sections.get("extra", {})
    solar = sections.setdefault("solar", {})
    powers = [_number(extra, f"pv{n}_power_w") for n in (1, 2)]
    currents = [_number(extra, f"pv{n}_current_a") for n in (1, 2)]
    volts = [_number(extra, f"pv{n}_voltage_v") for n in (1, 2)]
    if all(p is not None for p in powers):
        solar["pv_power_w"] = sum(p for p in powers if p is not None)
    if all(c is not None for c in currents):
        solar["pv_current_a"] = round(sum(c for c in currents if c is not None), 2)
    # One voltage for the array: that of the input giving the most power.
    strongest = volts[max(range(2), key=lambda i: powers[i] or 0.0)]
    if strongest is not None:
        solar["pv_voltage_v"] = strongest
    battery = sections.get("battery", {})
    power = _number(battery, "power_w")
    if power is not None:
        if power > IDLE_POWER_W:
            battery["state"] = "discharging"
        elif power < -IDLE_POWER_W:
            battery["state"] = "charging"
        else:
            battery["state"] = "idle"


def _derive_lp1(sections: Sections) -> None:
    extra = sections.get("extra", {})
    low, high = extra.pop(IMPORT_LOW, None), extra.pop(IMPORT_HIGH, None)
    if isinstance(low, float) and isinstance(high, float):
        words = int(high) * 0x10000 + int(low)
        sections.setdefault("grid", {})["import_energy_wh"] = words * KWH_TENTHS
    _derive_common(sections)


# Single-phase LV hybrid (SUN-xK-SG01LP1), V105 table.
_LP1: Final = (
    # 16 (low) / 17 (high): "rated power", 0.1 W.
    _reg("Rated power", 16, U32, "extra.inverter_rated_power_w", 0.1),
    _state("Running state", 59),
    _day("Day battery charge", 70, "extra.battery_charge_today_wh"),
    _day("Day battery discharge", 71, "extra.battery_discharge_today_wh"),
    _energy("Total battery charge", 72, "extra.battery_charge_total_wh"),
    _energy("Total battery discharge", 74, "extra.battery_discharge_total_wh"),
    _day("Day grid buy", 76, "extra.grid_import_today_wh"),
    _day("Day grid sell", 77, "extra.grid_export_today_wh"),
    # 78 "Total grid buy" low word; its high word is 80 (79 is the frequency).
    _reg("Total grid buy low word", 78, U16, f"extra.{IMPORT_LOW}"),
    _reg("Grid frequency", 79, U16, "grid.frequency_hz", 0.01),
    _reg("Total grid buy high word", 80, U16, f"extra.{IMPORT_HIGH}"),
    _energy("Total grid sell", 81, "grid.export_energy_wh"),
    _day("Day load", 84, "extra.load_energy_today_wh"),
    _energy("Total load", 85, "extra.load_energy_total_wh"),
    _temperature("DC transformer temperature", 90, "extra.inverter_dc_temperature_c"),
    _temperature("Radiator temperature", 91, "inverter.temperature_c"),
    _energy("Total PV", 96, "solar.energy_total_wh"),
    _day("Day PV", 108, "solar.energy_today_wh"),
    # 109-112: PV1 voltage, PV1 current, PV2 voltage, PV2 current; 0.1 V and 0.1 A.
    _reg("PV1 voltage", 109, U16, "extra.pv1_voltage_v", 0.1),
    _reg("PV1 current", 110, U16, "extra.pv1_current_a", 0.1),
    _reg("PV2 voltage", 111, U16, "extra.pv2_voltage_v", 0.1),
    _reg("PV2 current", 112, U16, "extra.pv2_current_a", 0.1),
    # 150 grid voltage L1 (151 L2 on split-phase models), 0.1 V; 154 inverter output voltage.
    _reg("Grid voltage L1", 150, U16, "grid.voltage_v", 0.1),
    _reg("Inverter voltage", 154, U16, "inverter.ac_voltage_v", 0.1),
    _reg("Grid current L1", 160, U16, "grid.current_a", 0.01),
    _reg("Inverter current", 164, S16, "inverter.ac_current_a", 0.01),
    # 169 "total grid power" (inverter side, L1 + L2); 172 the external CT's total.
    _reg("Grid power", 169, S16, "grid.power_w", 1.0),
    _reg("Grid CT power", 172, S16, "extra.grid_ct_power_w", 1.0),
    _reg("Inverter power", 175, S16, "inverter.ac_power_w", 1.0),
    _reg("Load power", 178, S16, "extra.load_power_w", 1.0),
    _temperature("Battery temperature", 182, "battery.temperature_c"),
    _reg("Battery voltage", 183, U16, "battery.voltage_v", 0.01),
    _reg("Battery SOC", 184, U16, "battery.soc_pct"),
    _reg("PV1 power", 186, U16, "extra.pv1_power_w"),
    _reg("PV2 power", 187, U16, "extra.pv2_power_w"),
    _reg("Battery power", 190, S16, "battery.power_w", 1.0),
    _reg("Battery current", 191, S16, "battery.current_a", 0.01),
    _reg("Inverter frequency", 193, U16, "inverter.ac_frequency_hz", 0.01),
    # 194 "grid relay": 1 connected.
    _reg("Grid connected", 194, U16, "extra.grid_connected"),
)

DEYE_SG01LP1: Final = RegisterMap(
    name="deye_sg01lp1",
    source=SOURCE_LP1,
    points=_LP1,
    derive=_derive_lp1,
)


def _identity(device_type: int) -> tuple[Point, ...]:
    """Registers 0 (device type) and 3-7 (serial, 10 ASCII characters): served, not polled."""
    return (
        Point("Device type", 0, H, U16, constant=device_type),
        Point("Serial number", 3, H, DataType.STRING, length=5, constant="SIM0000001"),
    )


def _identity_map(name: str, source: str) -> RegisterMap:
    """Read once per connection (drivers/identity.py): the serial number, registers
    3-7; register 0's device type is a code, not a model name, and is left out."""
    return identity_map(
        name,
        f"{source}: registers 3-7 serial number",
        (text_point(IdentityField.SERIAL_NUMBER, H, 3, 5),),
    )


# What the simulated single-phase inverter answers besides the poll: its identity.
DEYE_SG01LP1_SERVED: Final = RegisterMap(
    name="deye_sg01lp1",
    source=SOURCE_LP1,
    points=_identity(DEVICE_TYPE_LP1) + _LP1,
    derive=_derive_lp1,
)


def _derive_lp3(sections: Sections) -> None:
    grid = sections.get("grid", {})
    volts = grid.get("phase_voltage_v")
    if isinstance(volts, list) and volts:
        grid["voltage_v"] = round(sum(volts) / len(volts), 2)
    _derive_common(sections)


# Three-phase LV hybrid (SUN-xK-SG04LP3). The powers are the V104 "lower 16 bits"
# registers read as INT16: they hold a 12 kW (or 50 kW HV) inverter's values whole;
# the upper words (687-709) only matter above 32767 W.
_LP3: Final = (
    _reg("Rated power", 20, U32, "extra.inverter_rated_power_w", 0.1),
    _state("Running state", 500),
    _day("Day battery charge", 514, "extra.battery_charge_today_wh"),
    _day("Day battery discharge", 515, "extra.battery_discharge_today_wh"),
    _energy("Total battery charge", 516, "extra.battery_charge_total_wh"),
    _energy("Total battery discharge", 518, "extra.battery_discharge_total_wh"),
    _day("Day grid buy", 520, "extra.grid_import_today_wh"),
    _day("Day grid sell", 521, "extra.grid_export_today_wh"),
    _energy("Total grid buy", 522, "grid.import_energy_wh"),
    _energy("Total grid sell", 524, "grid.export_energy_wh"),
    _day("Day load", 526, "extra.load_energy_today_wh"),
    _energy("Total load", 527, "extra.load_energy_total_wh"),
    _day("Day PV", 529, "solar.energy_today_wh"),
    _energy("Total PV", 534, "solar.energy_total_wh"),
    _temperature("DC transformer temperature", 540, "extra.inverter_dc_temperature_c"),
    _temperature("Radiator temperature", 541, "inverter.temperature_c"),
    _temperature("Battery temperature", 586, "battery.temperature_c"),
    _reg("Battery voltage", 587, U16, "battery.voltage_v", 0.01),
    _reg("Battery SOC", 588, U16, "battery.soc_pct"),
    _reg("Battery power", 590, S16, "battery.power_w", 1.0),
    _reg("Battery current", 591, S16, "battery.current_a", 0.01),
    *(
        _reg(f"Grid voltage L{n + 1}", 598 + n, U16, f"grid.phase_voltage_v[{n}]", 0.1)
        for n in range(3)
    ),
    _reg("Grid frequency", 609, U16, "grid.frequency_hz", 0.01),
    _reg("Grid CT power", 619, S16, "extra.grid_ct_power_w", 1.0),
    *(
        _reg(f"Grid power L{n + 1}", 622 + n, S16, f"grid.phase_power_w[{n}]", 1.0)
        for n in range(3)
    ),
    _reg("Grid power", 625, S16, "grid.power_w", 1.0),
    _reg("Inverter voltage L1", 627, U16, "inverter.ac_voltage_v", 0.1),
    _reg("Inverter power", 636, S16, "inverter.ac_power_w", 1.0),
    _reg("Inverter frequency", 638, U16, "inverter.ac_frequency_hz", 0.01),
    _reg("Load power", 653, S16, "extra.load_power_w", 1.0),
    _reg("PV1 power", 672, U16, "extra.pv1_power_w"),
    _reg("PV2 power", 673, U16, "extra.pv2_power_w"),
    # 676-679: PV1 voltage, PV1 current, PV2 voltage, PV2 current; 0.1 V and 0.1 A.
    _reg("PV1 voltage", 676, U16, "extra.pv1_voltage_v", 0.1),
    _reg("PV1 current", 677, U16, "extra.pv1_current_a", 0.1),
    _reg("PV2 voltage", 678, U16, "extra.pv2_voltage_v", 0.1),
    _reg("PV2 current", 679, U16, "extra.pv2_current_a", 0.1),
)

DEYE_SG04LP3: Final = RegisterMap(
    name="deye_sg04lp3",
    source=SOURCE_LP3,
    points=_LP3,
    derive=_derive_lp3,
)

DEYE_SG04LP3_SERVED: Final = RegisterMap(
    name="deye_sg04lp3",
    source=SOURCE_LP3,
    points=_identity(DEVICE_TYPE_LP3) + _LP3,
    derive=_derive_lp3,
)

_NOTES: Final = (
    "RS485 (Modbus-RTU), 9600 8N1, unit id 1 by default; over TCP only through a "
    "gateway or the Solarman logger's Modbus bridge.",
    "Holding registers, function 03; 32-bit energy counters are low word first; "
    "temperatures are raw / 10 - 100.",
    "The battery on the inverter's BMS port fills the battery section.",
)


def _signature(description: str, device_type: int, soc: int, volts: int) -> Signature:
    """Register 0's device type, a SOC in 0..100 % and a 48 V class battery voltage."""
    return Signature(
        description,
        (
            Check(H, 0, U16, device_type, device_type),
            Check(H, soc, U16, 0, 100),
            Check(H, volts, U16, 36.0, 64.0, scale=0.01),
        ),
    )


PROFILES: Final = (
    DeviceProfile(
        name="deye_sg01lp1",
        vendor="Deye",
        models="SUN-3.6/5/6/8K-SG01LP1 single-phase LV hybrids (also sold as Sunsynk)",
        role=Role.INVERTER,
        register_map=DEYE_SG01LP1,
        identity=_identity_map("deye_sg01lp1", SOURCE_LP1),
        source=SOURCE_LP1,
        transports=frozenset({BusType.RTU}),
        config_name="inverter",
        signature=_signature(
            "Deye single-phase LV hybrid (device type 0x0003 at register 0)",
            DEVICE_TYPE_LP1,
            184,
            183,
        ),
        notes=(
            *_NOTES,
            "Total grid import is split: 78 low word, 80 high word (79 is the frequency).",
        ),
    ),
    DeviceProfile(
        name="deye_sg04lp3",
        vendor="Deye",
        models="SUN-5..12K-SG04LP3 three-phase LV hybrids (also sold as Sunsynk)",
        role=Role.INVERTER,
        register_map=DEYE_SG04LP3,
        identity=_identity_map("deye_sg04lp3", SOURCE_LP3),
        source=SOURCE_LP3,
        transports=frozenset({BusType.RTU}),
        config_name="inverter",
        signature=_signature(
            "Deye three-phase LV hybrid (device type 0x0005 at register 0)",
            DEVICE_TYPE_LP3,
            588,
            587,
        ),
        notes=(
            *_NOTES,
            "Powers are read from the 16-bit registers (V104 added upper words at 687-709, "
            "needed above 32767 W only).",
        ),
    ),
)
