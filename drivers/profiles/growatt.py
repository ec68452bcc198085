"""Growatt inverters: MIN/MOD TL-X (input 3000+), MAX/MID TL3-X (0+), SPH hybrids (0+, 1000+).

Source: Growatt "Growatt Inverter Modbus RTU Protocol" V1.24 (2020), section 4.2
"Input Reg" (function code 04), read from the vendor's PDF as kept in
WouterTuinstra/Homeassistant-Growatt-Local-Modbus (doc/). Page 3, "Register range
for various types of inverter", splits the families by address range, and that
split is why there are three profiles here:

- ``growatt_tlx``: "TL-X/TL-XH/TL-XHUS (MIN Type): 04 register range 3000~3124,
  3125~3249, 3250~3374 (TL-XH)" and "MOD TL3-XH: 04 register range 3000~3124,
  3125~3249" (table "Use for TL-X and TL-XH", 3000 onwards; BDC battery data from 3166);
- ``growatt_sph``: "Storage (SPH Type): 04 register range 0~124, 1000~1124,
  1125~1249": the "First group" 0-124 (PV, AC output, energies) and the storage
  group from 1000 (battery, power to user and to grid, local load);
- ``growatt_tl3x``: "TL3-X (MAX, MID, MAC Type): 04 register range 0~124,
  125~249": the same "First group" as the SPH, without the storage group.

Encoding (V1.24 section 1 and 4): every register is "16 bits (two bytes) unsigned
integer"; 32-bit values are two registers named "H" then "L" (high word first).
Powers are 0.1 W, voltages 0.1 V (battery 0.01 V in 3169), currents 0.1 A, the
frequency 0.01 Hz, energies 0.1 kWh (so Wh = raw x 100), SOC 1 %.

Signs: the document gives no signed power. Grid power comes as two counters,
"Pactouser" (AC power to user, i.e. drawn from the grid) and "Pactogrid" (AC power
to grid), and the battery as "Pdischarge" and "Pcharge"; :func:`_derive` makes the
protocol's signed ``grid.power_w`` (> 0 importing) and ``battery.power_w`` (> 0
discharging) from each pair (docs/protocol.md, "Signs"). Temperatures are read as
signed: the document calls every register unsigned, but a heat sink below 0 degC
can only be a two's-complement value, and positive values read the same either way.

Read limits (section 3): "Maximum read data length is 125 words in read command",
and "Minimum CMD period (RS485 Time out): 850ms. Wait for minimum 850ms to send a
new CMD after last CMD. Suggestion is 1s". Every extra request costs at least
850 ms (``command_gap_s``: drivers/device.py waits that long between two requests
to the device), so these maps bridge any gap a 125-register read can carry
(``max_gap``): a poll is one request (TL3-X) or two (SPH, TL-X). Address ranges the
document does not list for a type are declared unreadable (``holes``); the
document does not say what such a read returns, so no plan reads them and our
simulator refuses them with exception 02.

Cross-checked: esphome's growatt_solar component (protocol "RTU2", input 0-94:
Pac 35-36, Fac 37, Vac1 38, Eac today/total 53-56, temperature 93) and the
growatt_local Home Assistant integration (SPH: 1009/1011 discharge and charge
power, 1014 SOC, 1021/1029 power to user and to grid, 1046/1050 energies; TL-XH:
3171 SOC, 3178/3180 discharge and charge power, 3069/3073 energies) agree.
"""

from __future__ import annotations

from typing import Final

from drivers.identity import IdentityField, identity_map, text_point
from drivers.planner import Hole
from drivers.profile import Point, PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

SOURCE: Final = "Growatt Inverter Modbus RTU Protocol V1.24 (2020), 4.2 Input Reg"
# V1.24 section 3: "Maximum read data length is 125 words in read command".
GROWATT_MAX_REGISTERS: Final = 125
# V1.24 section 3: at least 850 ms between commands, so bridging is always cheaper.
GROWATT_MAX_GAP: Final = GROWATT_MAX_REGISTERS
# V1.24 section 3: "Wait for minimum 850ms to send a new CMD after last CMD".
GROWATT_COMMAND_GAP_S: Final = 0.85
LAST_ADDRESS: Final = 0xFFFF

U16, S16, U32 = DataType.UINT16, DataType.INT16, DataType.UINT32

# Inverter run state, V1.24 input 0 ("0:waiting, 1:normal, 3:fault").
FIRST_GROUP_STATES: Final = ((0, "waiting"), (1, "normal"), (3, "fault"))
# Input 3000, "The lower 8 bits indicate the machine status (web page display)
# 0: StandbyStatus; 1: NormalStatus; 3: FaultStatus 4: FlashStatus".
TLX_STATES: Final = ((0, "standby"), (1, "normal"), (3, "fault"), (4, "flash"))
# Input 3166 SysState_Mode (BDC1), "The upper 8 bits indicate the mode; 0: No
# charge and discharge; 1: charge; 2: Discharge".
BDC_MODES: Final = ((0, "idle"), (1, "charging"), (2, "discharging"))


_reg: Final = PointBuilder(RegisterType.INPUT, scale=0.1)


def _state(
    name: str, address: int, path: str, states: tuple[tuple[int, str], ...], shift: int
) -> Point:
    return _reg(name, address, U16, path, 1.0, states=states, shift=shift, mask=0xFF)


def _difference(plus: object, minus: object) -> float | None:
    if isinstance(plus, float) and isinstance(minus, float):
        return round(plus - minus, 2)
    return None


def _derive(sections: Sections) -> None:
    """Signed grid and battery powers from Growatt's pairs of unsigned ones."""
    extra = sections.get("extra", {})
    grid = _difference(extra.get("grid_import_power_w"), extra.get("grid_export_power_w"))
    if grid is not None:
        sections.setdefault("grid", {})["power_w"] = grid
    battery_power = _difference(
        extra.get("battery_discharge_power_w"), extra.get("battery_charge_power_w")
    )
    if battery_power is not None:
        battery = sections.setdefault("battery", {})
        battery["power_w"] = battery_power
        if "state" not in battery:
            # The SPH has no mode register for its battery: its two powers say it.
            if battery_power > 0:
                battery["state"] = "discharging"
            elif battery_power < 0:
                battery["state"] = "charging"
            else:
                battery["state"] = "idle"


# V1.24 "Use for TL-X and TL-XH", input 3000-3124, and the BDC (battery) group.
_TLX_POINTS: Final = (
    _state("InverterStatus", 3000, "inverter.state", TLX_STATES, shift=0),
    _reg("Ppv", 3001, U32, "solar.pv_power_w"),  # PV total power, 0.1 W
    _reg("Vpv1", 3003, U16, "solar.pv_voltage_v"),
    _reg("Ipv1", 3004, U16, "solar.pv_current_a"),
    _reg("Vpv2", 3007, U16, "extra.pv2_voltage_v"),
    _reg("Ipv2", 3008, U16, "extra.pv2_current_a"),
    _reg("Pac", 3023, U32, "inverter.ac_power_w"),  # "Output power", 0.1 W
    _reg("Fac", 3025, U16, "inverter.ac_frequency_hz", 0.01),
    _reg("Vac1", 3026, U16, "inverter.ac_voltage_v"),
    _reg("Iac1", 3027, U16, "inverter.ac_current_a"),
    # 3041 "Ptousertotal: Total forward power", 3043 "Ptogridtotal: Total reverse
    # power", 3045 "Ptoloadtotal: Total load power": the meter's view, 0.1 W each.
    _reg("Ptousertotal", 3041, U32, "extra.grid_import_power_w"),
    _reg("Ptogridtotal", 3043, U32, "extra.grid_export_power_w"),
    _reg("Ptoloadtotal", 3045, U32, "extra.load_power_w"),
    # 0.1 kWh -> Wh x 100.
    _reg("Eactoday", 3049, U32, "extra.ac_energy_today_wh", 100.0),
    _reg("Eactotal", 3051, U32, "inverter.energy_total_wh", 100.0),
    _reg("Epv_total", 3053, U32, "solar.energy_total_wh", 100.0),
    _reg("Etouser_total", 3069, U32, "grid.import_energy_wh", 100.0),
    _reg("Etogrid_total", 3073, U32, "grid.export_energy_wh", 100.0),
    _reg("Epv_today", 3083, U32, "solar.energy_today_wh", 100.0),
    _reg("Temp1", 3093, S16, "inverter.temperature_c"),  # "Inverter temperature", 0.1 degC
    # BDC1 (TL-XH and MOD TL3-XH battery; zeros on an inverter without one).
    _state("SysState_Mode", 3166, "battery.state", BDC_MODES, shift=8),
    _reg("Vbat", 3169, U16, "battery.voltage_v", 0.01),  # 0.01 V here, not 0.1
    # 3170 Ibat (0.1 A) is left out: V1.24 gives no sign for it.
    _reg("SOC", 3171, U16, "battery.soc_pct", 1.0),
    _reg("Pdischr", 3178, U32, "extra.battery_discharge_power_w"),
    _reg("Pchr", 3180, U32, "extra.battery_charge_power_w"),
    _reg("Edischr_total", 3182, U32, "extra.battery_discharged_energy_wh", 100.0),
    _reg("Echr_total", 3184, U32, "extra.battery_charged_energy_wh", 100.0),
)

TLX_HOLES: Final = (
    # Page 3: TL-X/TL-XH and MOD TL3-XH list input registers 3000-3374 only.
    Hole(RegisterType.INPUT, 0, 2999),
    Hole(RegisterType.INPUT, 3375, LAST_ADDRESS),
)

TLX: Final = RegisterMap(
    name="growatt_tlx",
    source=SOURCE,
    points=_TLX_POINTS,
    max_count=GROWATT_MAX_REGISTERS,
    max_gap=GROWATT_MAX_GAP,
    holes=TLX_HOLES,
    derive=_derive,
)


# The identity, read once per connection (drivers/identity.py), from V1.24's holding
# registers (4.1 "Holding Reg", as transcribed in the same repository's
# doc/growatt_registers_spec.md): 9-11 the inverter's firmware version (ASCII, two
# characters a register) and 23-27 "Serial NO" (10 ASCII characters), which the
# transcription gives for the TL-X and TL3-X families; for the SPH it places the
# serial number elsewhere (3001-3015), which is not read here. One request, 9 x 19.
FIRMWARE_ADDRESS: Final = 9
SERIAL_ADDRESS: Final = 23
IDENTITY_MAP: Final = identity_map(
    "growatt",
    "Growatt Inverter Modbus RTU Protocol V1.24 (2020), 4.1 Holding Reg: "
    "9-11 firmware version, 23-27 serial number",
    (
        text_point(IdentityField.FIRMWARE_VERSION, RegisterType.HOLDING, FIRMWARE_ADDRESS, 3),
        text_point(IdentityField.SERIAL_NUMBER, RegisterType.HOLDING, SERIAL_ADDRESS, 5),
    ),
    max_count=GROWATT_MAX_REGISTERS,
)
# What the simulated TL-X answers there besides its input registers.
TLX_SERVED: Final = RegisterMap(
    name="growatt_tlx",
    source=SOURCE,
    points=(
        Point(
            "Firmware version",
            FIRMWARE_ADDRESS,
            RegisterType.HOLDING,
            DataType.STRING,
            length=3,
            constant="TJ1.0",
        ),
        Point(
            "Serial NO",
            SERIAL_ADDRESS,
            RegisterType.HOLDING,
            DataType.STRING,
            length=5,
            constant="GRT0SIM001",
        ),
        *TLX.points,
    ),
    max_count=GROWATT_MAX_REGISTERS,
    max_gap=GROWATT_MAX_GAP,
    holes=TLX_HOLES,
    derive=_derive,
)


# V1.24 "First group" 0-124: TL3-X (MAX/MID/MAC) and the SPH's inverter side.
_FIRST_GROUP: Final = (
    _state("Inverter Status", 0, "inverter.state", FIRST_GROUP_STATES, shift=0),
    _reg("Ppv", 1, U32, "solar.pv_power_w"),  # "Input power", 0.1 W
    _reg("Vpv1", 3, U16, "solar.pv_voltage_v"),
    _reg("PV1Curr", 4, U16, "solar.pv_current_a"),
    _reg("Vpv2", 7, U16, "extra.pv2_voltage_v"),
    _reg("PV2Curr", 8, U16, "extra.pv2_current_a"),
    _reg("Pac", 35, U32, "inverter.ac_power_w"),  # "Output power", 0.1 W
    _reg("Fac", 37, U16, "inverter.ac_frequency_hz", 0.01),
    _reg("Vac1", 38, U16, "inverter.ac_voltage_v"),
    _reg("Iac1", 39, U16, "inverter.ac_current_a"),
    _reg("Eactoday", 53, U32, "extra.ac_energy_today_wh", 100.0),
    _reg("Eactotal", 55, U32, "inverter.energy_total_wh", 100.0),
    _reg("Epv_total", 91, U32, "solar.energy_total_wh", 100.0),
    _reg("Temp1", 93, S16, "inverter.temperature_c"),
)

# V1.24 storage group 1000-1124 ("Storage Power"), beside the first group on an SPH.
_STORAGE_GROUP: Final = (
    # 1000 uwSysWorkMode: 0 waiting, 1 self-test, 3 SysFault, 4 flash, 5 PV+battery
    # online, 6 battery online, 7 PV offline, 8 battery offline (kept as the code).
    _reg("uwSysWorkMode", 1000, U16, "extra.system_work_mode", 1.0),
    _reg("Pdischarge1", 1009, U32, "extra.battery_discharge_power_w"),
    _reg("Pcharge1", 1011, U32, "extra.battery_charge_power_w"),
    _reg("Vbat", 1013, U16, "battery.voltage_v"),
    _reg("SOC", 1014, U16, "battery.soc_pct", 1.0),
    # 1021 "PactouserTotal: AC power to user total" and 1029 "Pactogrid total:
    # AC power to grid total": import and export at the meter, 0.1 W.
    _reg("PactouserTotal", 1021, U32, "extra.grid_import_power_w"),
    _reg("PactogridTotal", 1029, U32, "extra.grid_export_power_w"),
    _reg("PLocalLoadTotal", 1037, U32, "extra.load_power_w"),
    _reg("Battery Temperature", 1040, S16, "battery.temperature_c"),
    _reg("Etouser_total", 1046, U32, "grid.import_energy_wh", 100.0),
    _reg("Etogrid_total", 1050, U32, "grid.export_energy_wh", 100.0),
    _reg("Edischarge1_total", 1054, U32, "extra.battery_discharged_energy_wh", 100.0),
    _reg("Echarge1_total", 1058, U32, "extra.battery_charged_energy_wh", 100.0),
    # 1108 uwMaxCellVolt / 1109 uwMinCellVolt, 0.001 V.
    _reg("uwMaxCellVolt", 1108, U16, "battery.cell_voltage_max_v", 0.001),
    _reg("uwMinCellVolt", 1109, U16, "battery.cell_voltage_min_v", 0.001),
)

SPH_HOLES: Final = (
    # Page 3: Storage (SPH Type) lists input registers 0-124, 1000-1124 and 1125-1249.
    Hole(RegisterType.INPUT, 125, 999),
    Hole(RegisterType.INPUT, 1250, LAST_ADDRESS),
)

SPH: Final = RegisterMap(
    name="growatt_sph",
    source=SOURCE,
    points=_FIRST_GROUP + _STORAGE_GROUP,
    max_count=GROWATT_MAX_REGISTERS,
    max_gap=GROWATT_MAX_GAP,
    holes=SPH_HOLES,
    derive=_derive,
)


TL3X_HOLES: Final = (
    # Page 3: TL3-X (MAX, MID, MAC) lists input registers 0-124 and 125-249.
    Hole(RegisterType.INPUT, 250, LAST_ADDRESS),
)

TL3X: Final = RegisterMap(
    name="growatt_tl3x",
    source=SOURCE,
    points=_FIRST_GROUP,
    max_count=GROWATT_MAX_REGISTERS,
    max_gap=GROWATT_MAX_GAP,
    holes=TL3X_HOLES,
)


def _mains(fac: int, vac: int) -> tuple[Check, ...]:
    """A live AC side: grid frequency (0.01 Hz) and phase voltage (0.1 V)."""
    return (
        Check(RegisterType.INPUT, fac, U16, 45.0, 65.0, scale=0.01),
        Check(RegisterType.INPUT, vac, U16, 80.0, 300.0, scale=0.1),
    )


_NOTES: Final = (
    "V1.24 asks for at least 850 ms between commands (1 s suggested): a poll takes "
    "that long per extra request; keep few other devices on its RS485 line.",
    "Modbus RTU at 9600 baud by default (holding register 22), address 1 (holding 30).",
    "Growatt's ShineWiFi/ShineLAN sticks talk to Growatt's cloud, not Modbus TCP: "
    "reach the RS485 port directly or through an RS485-to-Modbus-TCP gateway.",
)

PROFILES: Final = (
    DeviceProfile(
        name="growatt_tlx",
        vendor="Growatt",
        models="MIN TL-X and TL-XH, MOD TL3-X and TL3-XH (protocol V1.24, input 3000+)",
        role=Role.INVERTER,
        register_map=TLX,
        identity=IDENTITY_MAP,
        source=SOURCE,
        config_name="inverter",
        command_gap_s=GROWATT_COMMAND_GAP_S,
        signature=Signature(
            "Growatt TL-X/TL3-X (grid frequency 3025, voltage 3026, status 3000)",
            (
                *_mains(3025, 3026),
                Check(RegisterType.INPUT, 3000, U16, 0, 0x08FF),  # mode 0-8, status
            ),
        ),
        notes=(
            *_NOTES,
            "The battery values (3166+) are those of BDC1 of a TL-XH or MOD TL3-XH; an "
            "inverter without a battery reads them as zeros.",
        ),
    ),
    DeviceProfile(
        name="growatt_sph",
        vendor="Growatt",
        models="SPH hybrids (protocol V1.24, input 0-124 and 1000-1124)",
        role=Role.INVERTER,
        register_map=SPH,
        source=SOURCE,
        config_name="inverter",
        command_gap_s=GROWATT_COMMAND_GAP_S,
        signature=Signature(
            "Growatt SPH (grid frequency 37, voltage 38, battery SOC 1014)",
            (
                *_mains(37, 38),
                Check(RegisterType.INPUT, 1014, U16, 0, 100),
            ),
        ),
        notes=_NOTES,
    ),
    DeviceProfile(
        name="growatt_tl3x",
        vendor="Growatt",
        models="MAX/MID/MAC TL3-X three-phase inverters (protocol V1.24, input 0-249)",
        role=Role.INVERTER,
        register_map=TL3X,
        identity=IDENTITY_MAP,
        source=SOURCE,
        config_name="inverter",
        command_gap_s=GROWATT_COMMAND_GAP_S,
        # The first group as on an SPH, and an answer from the second group (125,
        # "PID PV1+ Voltage", 0.1 V), which an SPH does not list.
        signature=Signature(
            "Growatt TL3-X (grid frequency 37, voltage 38, second group 125)",
            (
                *_mains(37, 38),
                Check(RegisterType.INPUT, 125, U16, 0, 0xFFFF),
            ),
        ),
        notes=_NOTES,
    ),
)
