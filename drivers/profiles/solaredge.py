"""SolarEdge inverters (SE single and three phase, StorEdge / Energy Hub): SunSpec + battery.

Sources:

- SolarEdge Technical Note "SunSpec Logging in SolarEdge Inverters", version 3.2
  (June 2025): "Common Model MODBUS Register Mappings" (40000), "Inverter Model
  MODBUS Register Mappings" (40069, models 101/102/103, 50 registers), "Meter
  Models" (the first meter at 40000 + 121, its own common block then model
  201-204 at 40188), "Appendix A" (word order of the 32-bit vendor registers).
- SolarEdge Technical Note "Power Control Protocol for SolarEdge Inverters",
  version 1.3 (Nov. 2017), "StorEdge Battery 1 Status and Information Block
  register mapping" (0xE100-0xE1B9).

The layout is fixed by the note, so this map is fixed too (no discovery): the
"SunS" marker at 40000, a common block of 65 registers (SolarEdge leaves out the
pad of SunSpec's 66) at 40002, the inverter model at 40069 with the SunSpec
layout of 101-103 (the three share offsets), meter 1's common block at 40121 and
its model (201-204, 105 registers) at 40188, then the chain's end at 40295. The
SunSpec rows and decoding are :mod:`drivers.profiles.sunspec`'s own.

Quirks the note states, kept here rather than in the poller:

- "Only a single connection and session are supported" (MODBUS over TCP
  Support): the agent must be the only Modbus TCP client (``single_client``).
- Modbus TCP is off by default; SetApp inverters listen on port 1502 by
  default, LCD inverters on 502; "The default device ID of the inverter
  connected to the Ethernet is 1".
- The inverter fills its heat sink temperature (I_Temp_Sink, 40103) only; the
  cabinet temperature that SunSpec's model maps first is not implemented.
- Meter 1 at 40121 is the first *enabled* meter; with two-unit (three-unit)
  Synergy inverters every meter address moves by 50 (70), which this map does
  not cover: read such an inverter with ``sunspec`` (discovery).
- Meter power sign: the note only says "Power signs and Energy quadrants are
  per IEEE 1459-2000". The SolarEdge meter at the grid connection ("Export +
  Import") reports export as positive, import as negative (the
  solaredge-modbus-multi maintainer, issue #69; evcc's solaredge templates read
  ``203:W`` with ``scale: -1``), so W and its phases are negated to the
  protocol's "import > 0" (docs/protocol.md, "A reading").
- Battery registers (0xE100...) are float32, uint32 and uint64 "in the
  Little-Endian word order" (Appendix A of the SunSpec note): low word first,
  ``CDAB``. Battery power and current are positive while charging (evcc's
  "SolarEdge StorEdge" template negates 0xE174 for its discharge-positive
  convention); negated here to "discharge > 0". A battery that is not there
  reads as NaN or +-3.4e38 (float32's largest magnitude, seen by
  solaredge-modbus-multi): such values are dropped, never sent.
- PV power of a hybrid: the inverter's DC input (I_DC_Power) is PV power less
  what the battery takes (evcc's "SolarEdge Hybrid Inverter (PV Meter)" adds
  0xE174 to DCW); ``solar.pv_power_w`` is computed from both.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from drivers.planner import Hole
from drivers.profile import Point, PointBuilder, RegisterMap, Sections, Target
from drivers.profiles import sunspec
from drivers.profiles.device_profile import DeviceProfile
from drivers.registers import DataType, RegisterType, WordOrder
from telemetry.roles import Role

SOURCE: Final = (
    "SolarEdge Technical Note 'SunSpec Logging in SolarEdge Inverters' v3.2 (June 2025): "
    "common, inverter (40069) and meter (40121) mappings; SolarEdge Technical Note "
    "'Power Control Protocol for SolarEdge Inverters' v1.3 (Nov. 2017): StorEdge Battery 1 "
    "Status and Information Block (0xE100)"
)
MANUFACTURER: Final = "SolarEdge"  # C_Manufacturer, "Value Registered with SunSpec"

BASE: Final = 40000
COMMON_ADDRESS: Final = 40002
COMMON_LENGTH: Final = 65  # "65 = Length of block in 16-bit registers" (no pad register)
INVERTER_ADDRESS: Final = 40069  # C_SunSpec_DID: 101, 102 or 103
METER1_COMMON_ADDRESS: Final = 40121  # "1st meter 40000 + 121"
METER1_ADDRESS: Final = 40188  # meter 1's C_SunSpec_DID: 201-204
METER_LENGTH: Final = 105
CHAIN_END: Final = METER1_ADDRESS + 2 + METER_LENGTH  # 40295, where meter 2 would start
METERS_LAST: Final = 40644  # meter 3's M_Events (40643, 2 registers)
BATTERY1: Final = 0xE100  # "Battery 1 Status and Information is set to 0xE100"
BATTERY_BLOCK_LAST: Final = 0xE1B9  # 0xE19A + 32 reserved registers - 1

# Battery 1 Status (0xE186): "0 - Off; 1 - Standby; 2 - Init; 3 - Charge;
# 4 - Discharge; 5 - Fault; 7 - Idle". 6 and 10 are not in the note; they are the
# codes solaredge-modbus-multi has seen ("Preserve Charge", "Power Saving").
BATTERY_STATES: Final = (
    (0, "off"),
    (1, "standby"),
    (2, "initializing"),
    (3, "charging"),
    (4, "discharging"),
    (5, "fault"),
    (6, "preserve_charge"),
    (7, "idle"),
    (10, "power_saving"),
)

F32, U32, U16, STR = DataType.FLOAT32, DataType.UINT32, DataType.UINT16, DataType.STRING
# float32's largest finite magnitude: what a missing battery value reads as.
_FLOAT32_MAX: Final = 3.4e38


def _inverter() -> sunspec.ModelDef:
    """Model 103's rows; the temperature is the heat sink's (40103), not the cabinet's."""
    paths = {"TmpCab": None, "TmpSnk": "inverter.temperature_c"}
    rows = tuple(
        dataclasses.replace(row, path=paths.get(row.name, row.path))
        for row in sunspec.MODELS[103].rows
    )
    return sunspec.ModelDef(103, 50, rows)


def _meter() -> sunspec.ModelDef:
    """Model 203's rows with the power negated: SolarEdge's meter counts export positive."""
    negated = {"W", "WphA", "WphB", "WphC"}
    rows = tuple(
        dataclasses.replace(row, scale=-row.scale) if row.name in negated else row
        for row in sunspec.MODELS[203].rows
    )
    return sunspec.ModelDef(203, METER_LENGTH, rows)


# "StorEdge Battery 1 ...": offsets from 0xE100; Appendix A: little-endian word order.
_battery1: Final = PointBuilder(
    RegisterType.HOLDING, WordOrder.CDAB, locate=lambda offset: BATTERY1 + offset
)


def _battery_point(
    offset: int,
    name: str,
    data_type: DataType,
    path: str | None = None,
    *,
    scale: float = 1.0,
    length: int = 0,
    constant: int | float | str | None = None,
    states: tuple[tuple[int, str], ...] = (),
) -> Point:
    return _battery1(
        f"battery1.{name}",
        offset,
        data_type,
        path,
        scale,
        length=length,
        constant=constant,
        states=states,
    )


# "StorEdge Battery 1 Status and Information Block register mapping" (offsets from 0xE100).
BATTERY_POINTS: Final = (
    _battery_point(0x00, "Manufacturer Name", STR, length=16, constant="SolarEdge"),
    _battery_point(0x10, "Model", STR, length=16, constant="BAT-10K1P"),
    _battery_point(0x20, "Firmware Version", STR, length=16, constant="DCDC 1.2.3"),
    _battery_point(0x30, "Serial Number", STR, length=16, constant="SIM-BAT-0001"),
    _battery_point(0x40, "Device ID", U16, constant=15),
    _battery_point(0x41, "Reserved", U16, constant=0),
    _battery_point(0x42, "Rated Energy", F32, "extra.battery_rated_wh"),
    _battery_point(0x44, "Max Charge Continues Power", F32, "extra.battery_max_charge_w"),
    _battery_point(0x46, "Max Discharge Continues Power", F32, "extra.battery_max_discharge_w"),
    _battery_point(0x48, "Max Charge Peak Power", F32, constant=0.0),
    _battery_point(0x4A, "Max Discharge Peak Power", F32, constant=0.0),
    _battery_point(0x6C, "Average Temperature", F32, "battery.temperature_c"),
    _battery_point(0x6E, "Max Temperature", F32, "extra.battery_temperature_max_c"),
    _battery_point(0x70, "Instantaneous Voltage", F32, "battery.voltage_v"),
    # Positive while charging (see above): negated to the protocol's discharge > 0.
    _battery_point(0x72, "Instantaneous Current", F32, "battery.current_a", scale=-1.0),
    _battery_point(0x74, "Instantaneous Power", F32, "battery.power_w", scale=-1.0),
    # 0xE176 and 0xE17A are uint64 counters, low word first: their first two
    # registers are the low 32 bits, a CDAB uint32 that holds any count below
    # 4.29 GWh; the high half (0xE178, 0xE17C) is then 0.
    _battery_point(
        0x76, "Lifetime Export Energy Counter", U32, "extra.battery_discharge_energy_wh"
    ),
    _battery_point(0x78, "Lifetime Export Energy Counter high", U32, constant=0),
    _battery_point(0x7A, "Lifetime Import Energy Counter", U32, "extra.battery_charge_energy_wh"),
    _battery_point(0x7C, "Lifetime Import Energy Counter high", U32, constant=0),
    _battery_point(0x7E, "Max Energy", F32, "extra.battery_max_energy_wh"),
    _battery_point(0x80, "Available Energy", F32, "extra.battery_available_energy_wh"),
    # SOH = max / rated energy and SOE = available / max energy, in percent.
    _battery_point(0x82, "State of Health (SOH)", F32, "battery.soh_pct"),
    _battery_point(0x84, "State of Energy (SOE)", F32, "battery.soc_pct"),
    _battery_point(0x86, "Status", U32, "battery.state", states=BATTERY_STATES),
    _battery_point(0x88, "Status Internal", U32, constant=0),
)


def _drop_absent(sections: Sections) -> None:
    """Values a battery leaves unset read as +-float32 max: absent, not huge."""
    for values in sections.values():
        for name, value in list(values.items()):
            if isinstance(value, float) and abs(value) >= _FLOAT32_MAX:
                del values[name]


def _derive(sections: Sections) -> None:
    _drop_absent(sections)
    dc_power = sections.get("inverter", {}).get("dc_power_w")
    battery_power = sections.get("battery", {}).get("power_w")
    if isinstance(dc_power, float):
        # DC input = PV - battery charge = PV + battery power (discharge > 0).
        charge = -battery_power if isinstance(battery_power, float) else 0.0
        sections.setdefault("solar", {})["pv_power_w"] = round(max(dc_power + charge, 0.0), 3)


def solaredge_map(
    *,
    model: str = "SE10K-RWS",
    meter_model: str = "SE-MTR-3Y-400V-A",
) -> RegisterMap:
    """The fixed map: inverter (40069), meter 1 (40188) and battery 1 (0xE100).

    ``model`` and ``meter_model`` only fill the common blocks' strings, which
    a poll does not read (the simulator serves them).
    """
    taken: set[Target] = set()
    points = [
        Point("SunS", BASE, RegisterType.HOLDING, STR, length=2, constant="SunS"),
        *sunspec.model_points(
            sunspec.common_model(
                COMMON_LENGTH,
                maker=MANUFACTURER,
                model=model,
                version="0004.0020.0036",
                serial="7E0123456",
            ),
            COMMON_ADDRESS,
            "common.",
            taken,
        ),
        *sunspec.model_points(_inverter(), INVERTER_ADDRESS, "inverter.", taken),
        *sunspec.model_points(
            sunspec.common_model(
                COMMON_LENGTH,
                maker=MANUFACTURER,
                model=meter_model,
                options="Export+Import",
                version="1.0",
                serial="SIM-MTR-0001",
            ),
            METER1_COMMON_ADDRESS,
            "meter1.common.",
            taken,
        ),
        *sunspec.model_points(_meter(), METER1_ADDRESS, "meter1.", taken),
        Point("end.ID", CHAIN_END, RegisterType.HOLDING, U16, constant=sunspec.END_ID),
        Point("end.L", CHAIN_END + 1, RegisterType.HOLDING, U16, constant=0),
        *BATTERY_POINTS,
    ]
    return RegisterMap(
        name="solaredge",
        source=SOURCE,
        points=tuple(points),
        # Bridges battery 1's reserved 0xE14C-0xE16B (32 registers): the inverter
        # answers reads across them (solaredge-modbus-multi reads 0xE144 x 86), and
        # one round trip costs more than 36 registers on either bus.
        max_gap=36,
        na_markers=True,  # SunSpec's "not implemented" values, and NaN for the floats
        # "Only enabled meters are readable": with meter 1 only, meters 2 and 3
        # (40297-40644) answer "Illegal data address" (Appendix A, wrong address).
        holes=(Hole(RegisterType.HOLDING, CHAIN_END + 2, METERS_LAST),),
        derive=_derive,
    )


SOLAREDGE: Final = solaredge_map()

PROFILES: Final = (
    DeviceProfile(
        name="solaredge",
        vendor="SolarEdge",
        models=(
            "SE single and three phase inverters (SetApp and LCD, CPU 3.xxxx and later), "
            "StorEdge / Energy Hub with battery 1 and the SolarEdge meter 1"
        ),
        role=Role.INVERTER,
        register_map=SOLAREDGE,
        source=SOURCE,
        single_client=True,
        config_name="inverter",
        sunspec_manufacturer=MANUFACTURER,
        sunspec_models=(101, 102, 103),
        # The inverter's common block (C_Manufacturer, C_Model, C_Version,
        # C_SerialNumber at 40004, 40020, 40044, 40052), read once per connection.
        identity=sunspec.common_identity(COMMON_ADDRESS, name="solaredge"),
        notes=(
            "Modbus TCP is off by default: SetApp > Site Communication > Modbus TCP > "
            "Enable; port 1502 by default on SetApp inverters, 502 on LCD inverters.",
            "One Modbus TCP client at a time: the agent must be the only one "
            "(no second logger, no evcc or Home Assistant on the same inverter).",
            "Unit id 1 on TCP; on RS485 the Device ID set under RS485-1 (SunSpec, Non-SE Logger).",
            "Reads inverter, meter 1 (the first enabled meter, 40121) and battery 1 "
            "(0xE100); two- and three-unit Synergy inverters shift the meters: use "
            "profile 'sunspec' for them.",
            "The meter's power is export-positive on the device; the profile negates it.",
        ),
    ),
)
