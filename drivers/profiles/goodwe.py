"""GoodWe ET/EH/BT/BH hybrid inverters (ARM platform 205/745), with their meter and battery.

Source: GoodWe "Modbus Protocol Hybrid ET/EH/BH/BT (ARM205 HV)" V1.7, "Read Only"
(2020-02-26), sections 4.1 "Device Information Data Registers" (35000+), 4.2
"Running Information Data Registers" (35100+), 4.3 "External Communication Data
(ARM)" (the meter, 36000+) and 4.5 "BMS Information" (37000+); and GoodWe's "ARM
745 ESG2 ET30 MODBUS Protocol Map" (2022-12-31), section 1 for the bus facts:
"Inverter Address: Can be assigned from 1~247. 247 is factory default
assignment", 9600 bps, function code 03 for reading ("02H: Register address fault
or overflow of read register number"). The tables were read through their
transcriptions: the sensor tables of marcelblijleven/goodwe (goodwe/et.py, with
each sensor's register, width and scale) and evcc's goodwe-hybrid template; where
they disagree with each other, the choice is said at the point.

Encoding: holding registers, 16-bit words, 32-bit values high word first; 0.1 V,
0.1 A, 0.01 Hz, powers in W, energies in 0.1 kWh (Wh = raw x 100), SOC and SOH in
%, cell voltages in mV, temperatures in 0.1 degC (signed).

Signs: GoodWe counts grid power positive when exporting ("Active Power" 35140:
marcelblijleven/goodwe names >= 90 W "Exporting"; evcc's template reads the meter's
36025 with scale -1 for a grid meter that counts import positive): the meter
points carry a negative scale, so ``grid.power_w`` > 0 is importing
(docs/protocol.md, "Signs"). The battery's 35182 "Pbattery1" and 35181
"Ibattery1" are positive when discharging (goodwe's house consumption is PV plus
Pbattery1 minus the export; evcc reads 35182 unchanged as a battery meter, > 0
discharging), which is already the protocol's sign.

Reads: the running data is read as GoodWe's tools and marcelblijleven/goodwe do,
as one block (35100 x 125), so the map bridges every gap a request can carry
(``max_gap``): a poll is three requests (running data, meter, BMS). Firmware from
before the extended meter data answers 36000 x 45 but refuses longer meter reads
(marcelblijleven/goodwe falls back from 36000 x 58 to 36000 x 45 on exception
02), hence the hole from 36045.

Transport: Modbus RTU on the RS485 port at unit 247, or Modbus TCP on port 502
through GoodWe's LAN (or WiFi/LAN) module on recent ARM firmware. The WiFi module
alone speaks GoodWe's own "AA55" protocol over UDP 8899, which is not Modbus and
is not supported here.
"""

from __future__ import annotations

from typing import Final

from drivers.identity import IdentityField, identity_map, text_point
from drivers.planner import Hole
from drivers.profile import Point, PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

SOURCE: Final = (
    "GoodWe Modbus Protocol Hybrid ET/EH/BH/BT (ARM205 HV) V1.7 (2020), sections 4.1-4.5"
)
GOODWE_UNIT: Final = 247  # "247 is factory default assignment"
GOODWE_MAX_REGISTERS: Final = 125  # the running-data block 35100 x 125, read whole
HOLDING = RegisterType.HOLDING
U16, S16, U32, S32 = DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32

# 35187 "Work Mode" (marcelblijleven/goodwe WORK_MODES_ET).
WORK_MODES: Final = (
    (0, "waiting"),
    (1, "on_grid"),
    (2, "off_grid"),
    (3, "fault"),
    (4, "flash"),
    (5, "check"),
)
# 35184 "Battery Mode": 0 no battery, 1 standby, 2 discharge, 3 charge, 4 to be
# charged, 5 to be discharged.
BATTERY_MODES: Final = (
    (0, "no_battery"),
    (1, "idle"),
    (2, "discharging"),
    (3, "charging"),
    (4, "to_be_charged"),
    (5, "to_be_discharged"),
)
PV_STRINGS: Final = 4
# "GW" in the first register of the model name (35011-35015, e.g. "GW10K-ET").
MODEL_PREFIX: Final = 0x4757


_reg: Final = PointBuilder(HOLDING)


def _state(name: str, address: int, path: str, states: tuple[tuple[int, str], ...]) -> Point:
    return _reg(name, address, U16, path, states=states)


def _derive(sections: Sections) -> None:
    """PV power: the sum of the strings' powers (no total register in 35100-35224)."""
    extra = sections.get("extra", {})
    powers = [extra.get(f"pv{i}_power_w") for i in range(1, PV_STRINGS + 1)]
    numbers = [p for p in powers if isinstance(p, float)]
    if numbers:
        sections.setdefault("solar", {})["pv_power_w"] = round(sum(numbers), 2)


_RUNNING: Final = (
    _reg("Vpv1", 35103, U16, "solar.pv_voltage_v", 0.1),
    _reg("Ipv1", 35104, U16, "solar.pv_current_a", 0.1),
    _reg("Ppv1", 35105, U32, "extra.pv1_power_w"),
    _reg("Vpv2", 35107, U16, "extra.pv2_voltage_v", 0.1),
    _reg("Ipv2", 35108, U16, "extra.pv2_current_a", 0.1),
    _reg("Ppv2", 35109, U32, "extra.pv2_power_w"),
    _reg("Ppv3", 35113, U32, "extra.pv3_power_w"),
    _reg("Ppv4", 35117, U32, "extra.pv4_power_w"),
    # On-grid L1 voltage, current and frequency (0.1 V, 0.1 A, 0.01 Hz).
    _reg("Vgrid_R", 35121, U16, "inverter.ac_voltage_v", 0.1),
    _reg("Igrid_R", 35122, U16, "inverter.ac_current_a", 0.1),
    _reg("Fgrid_R", 35123, U16, "inverter.ac_frequency_hz", 0.01),
    # 35138 "Total Power" of the inverter, signed W (< 0 while it charges from AC).
    _reg("Total_Inv_Power", 35138, S16, "inverter.ac_power_w"),
    _reg("Total_Load_Power", 35172, S16, "extra.load_power_w"),
    # 35176 radiator (heat sink) temperature; 35174 air and 35175 module are others.
    _reg("Temperature", 35176, S16, "inverter.temperature_c", 0.1),
    _reg("Vbattery1", 35180, U16, "battery.voltage_v", 0.1),
    _reg("Ibattery1", 35181, S16, "battery.current_a", 0.1),
    # 32 bits (marcelblijleven/goodwe and evcc read 35182 as int32; a 16-bit reading
    # of 35183 alone, as some maps give, drops the high word).
    _reg("Pbattery1", 35182, S32, "battery.power_w"),
    _state("Battery Mode", 35184, "battery.state", BATTERY_MODES),
    _state("Work Mode", 35187, "inverter.state", WORK_MODES),
    _reg("PV_E_Total", 35191, U32, "solar.energy_total_wh", 100.0),
    _reg("PV_E_Day", 35193, U32, "solar.energy_today_wh", 100.0),
    _reg("E_Total_Exp", 35195, U32, "grid.export_energy_wh", 100.0),
    _reg("E_Total_Imp", 35200, U32, "grid.import_energy_wh", 100.0),
    _reg("E_Bat_Charge_Total", 35206, U32, "extra.battery_charged_energy_wh", 100.0),
    _reg("E_Bat_Discharge_Total", 35209, U32, "extra.battery_discharged_energy_wh", 100.0),
)

# 4.3 meter data. The 32-bit powers 36019-36026 are the ones to read on ARM firmware
# above 09 (the 16-bit 36005-36008 saturate at 32 kW); > 0 exporting, hence scale -1.
_METER: Final = (
    _reg("Meter Frequency", 36014, U16, "grid.frequency_hz", 0.01),
    _reg("Meter Active Power R", 36019, S32, "grid.phase_power_w[0]", -1.0),
    _reg("Meter Active Power S", 36021, S32, "grid.phase_power_w[1]", -1.0),
    _reg("Meter Active Power T", 36023, S32, "grid.phase_power_w[2]", -1.0),
    _reg("Meter Total Active Power", 36025, S32, "grid.power_w", -1.0),
)

# 4.5 BMS information (37000 x 24 in marcelblijleven/goodwe).
_BMS: Final = (
    _reg("BMS Pack Temperature", 37003, S16, "battery.temperature_c", 0.1),
    _reg("BMS Charge Imax", 37004, U16, "extra.bms_max_charge_current_a"),
    _reg("BMS Discharge Imax", 37005, U16, "extra.bms_max_discharge_current_a"),
    _reg("BMS SOC", 37007, U16, "battery.soc_pct"),
    _reg("BMS SOH", 37008, U16, "battery.soh_pct"),
    _reg("BMS Max Cell Voltage", 37022, U16, "battery.cell_voltage_max_v", 0.001),
    _reg("BMS Min Cell Voltage", 37023, U16, "battery.cell_voltage_min_v", 0.001),
)

GOODWE_HOLES: Final = (
    # Meter data beyond 36044 is refused by firmware without the extended meter block.
    Hole(HOLDING, 36045, 36999),
)

ET: Final = RegisterMap(
    name="goodwe_et",
    source=SOURCE,
    points=_RUNNING + _METER + _BMS,
    max_count=GOODWE_MAX_REGISTERS,
    max_gap=GOODWE_MAX_REGISTERS,
    holes=GOODWE_HOLES,
    derive=_derive,
)

# 4.1 device information, answered but not polled: 35001 rated power (W), 35002 AC
# output type (0 single phase, 1 three phase four wire, 2 three phase three wire),
# 35003-35010 serial number and 35011-35015 model name (ASCII).
DEVICE_INFO: Final = (
    _reg("Rated Power", 35001, U16, "extra.inverter_rated_power_w"),
    Point("AC Output Type", 35002, HOLDING, U16, constant=1),
    Point("Serial Number", 35003, HOLDING, DataType.STRING, length=8, constant="95000ETU000SIM01"),
    Point("Model Name", 35011, HOLDING, DataType.STRING, length=5, constant="GW5K-ET"),
)

# Read once per connection (drivers/identity.py): 4.1's serial number and model
# name, one request of 13 registers.
IDENTITY_MAP: Final = identity_map(
    "goodwe_et",
    f"{SOURCE}: 4.1 device information, 35003 serial number, 35011 model name",
    (
        text_point(IdentityField.SERIAL_NUMBER, HOLDING, 35003, 8),
        text_point(IdentityField.MODEL, HOLDING, 35011, 5),
    ),
    max_count=GOODWE_MAX_REGISTERS,
    holes=GOODWE_HOLES,
)

ET_SERVED: Final = RegisterMap(
    name="goodwe_et",
    source=SOURCE,
    points=DEVICE_INFO + ET.points,
    max_count=GOODWE_MAX_REGISTERS,
    max_gap=GOODWE_MAX_REGISTERS,
    holes=GOODWE_HOLES,
)


PROFILES: Final = (
    DeviceProfile(
        name="goodwe_et",
        vendor="GoodWe",
        models="ET, EH, BT, BH hybrid inverters (ARM 205/745 Modbus protocol)",
        role=Role.INVERTER,
        register_map=ET,
        source=SOURCE,
        default_unit=GOODWE_UNIT,
        config_name="inverter",
        identity=IDENTITY_MAP,
        signature=Signature(
            "GoodWe hybrid (model name 'GW...' at 35011, grid frequency 35123)",
            (
                Check(HOLDING, 35011, U16, MODEL_PREFIX, MODEL_PREFIX),
                Check(HOLDING, 35123, U16, 45.0, 65.0, scale=0.01),
            ),
        ),
        notes=(
            "RS485 at 9600 baud; the same unit id (1-247, 247 from the factory) answers "
            "through the LAN module.",
            "Modbus TCP (port 502) needs GoodWe's LAN or WiFi/LAN module, and may have to be "
            "enabled in GoodWe's app first (SEMS+, per GoodWe's Third-Party EMS Protocol "
            "V1.1.1); the WiFi-only module speaks GoodWe's UDP protocol (port 8899), which "
            "the kit does not read.",
            "GoodWe's later Third-Party EMS Protocol (its own registers from 33000, not this "
            "map) asks for reads of at most 100 registers about once a second; this map reads "
            "the ARM205 running block in one request of 108 registers, as "
            "marcelblijleven/goodwe reads 35100 x 125.",
            "The battery and the meter are read through the inverter: battery.* from "
            "35180-35184 and the BMS block 37000, grid.* from the meter block 36000.",
        ),
    ),
)
