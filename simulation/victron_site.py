"""The plant as a Victron ESS: one GX answering for four services, each at its own unit id.

Pure logic. ``ems sim --site victron`` serves what a Cerbo GX serves on its
Modbus TCP port (drivers/profiles/victron.py), at the unit ids of the register
list's sheet "Unit ID mapping":

| unit | service (com.victronenergy.*) | device | profile |
| --- | --- | --- | --- |
| 100 | system | the whole site | ``victron_system`` |
| 227 | vebus | a MultiPlus-II on the Cerbo's VE.Bus port | ``victron_vebus`` |
| 226 | solarcharger | a SmartSolar MPPT on VE.Direct port 1 | ``victron_solarcharger`` |
| 225 | battery | the CAN-bus BMS | ``victron_battery`` |

The plant's battery inverter, single-phase on L1, is the MultiPlus-II: its AC
input is the grid connection's L1, its AC output the loads behind it, so output
less input is the plant's inverter AC power; its DC side is the inverter's.
The MPPT is the plant's charge controller, the BMS its battery, and the system
service sums them as the GX does (grid per phase, the battery as the BMS
reports it, "PV - DC-coupled power" = the chargers' output power).

Like the GX, every service answers function 0x03 and 0x04 alike, a value it
does not give reads 0, reads of registers the list does not give the service
are refused (the maps' holes), and a unit id with no service gets exception
0x0A "gateway path unavailable" (dbus_modbustcp: ServiceError) for any address
up to the list's last (an address beyond every service's is exception 02).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from drivers.planner import Hole
from drivers.profile import Point, RegisterImage, RegisterMap
from drivers.profiles import victron
from drivers.profiles.victron import BATTERY, SOLARCHARGER, SYSTEM, VEBUS
from drivers.registers import DataType, RegisterType
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

SYSTEM_UNIT: Final = 100
VEBUS_UNIT: Final = 227
SOLARCHARGER_UNIT: Final = 226
BATTERY_UNIT: Final = 225
PHASES: Final = 3
# The plant's inverter feeds L1 (its grid L1 carries the inverter's power).
MULTI_PHASE: Final = 0
# vebus 31 /State and solarcharger 775 /State: 3 = Bulk, 0 = Off.
CHARGER_BULK: Final = 3.0
CHARGER_OFF: Final = 0.0
# dbus_modbustcp backend.cpp: ServiceError -> PDU::GatewayPathUnavailable (10).
GATEWAY_PATH_UNAVAILABLE: Final = 0x0A
# The highest register Rev 53 lists (attributes.csv); an address no service has
# gets exception 02 whatever the unit id (mappings.cpp: StartAddressError).
GX_LAST_REGISTER: Final = 5819


def _float(values: Mapping[str, object], name: str) -> float | None:
    value = values.get(name)
    return float(value) if isinstance(value, int | float) else None


def _list(values: Mapping[str, object], name: str) -> list[float]:
    value = values.get(name)
    return [float(v) for v in value] if isinstance(value, list) else []


def _section(sections: PlantSections, name: str) -> dict[str, object]:
    return dict(sections.get(name, {}))


def gx_system(sections: PlantSections) -> DeviceSections:
    """com.victronenergy.system: the GX's own sums."""
    grid = _section(sections, "grid")
    battery = _section(sections, "battery")
    extra = _section(sections, "extra")
    out: DeviceSections = {"grid": {}, "battery": {}, "extra": {}}
    if phases := _list(grid, "phase_power_w"):
        out["grid"]["phase_power_w"] = phases
    for name in ("voltage_v", "current_a", "power_w", "soc_pct", "state"):
        if name in battery:
            out["battery"][name] = battery[name]
    if (charged := _float(extra, "charger_output_power_w")) is not None:
        out["extra"]["pv_dc_power_w"] = charged
    if (house := _float(extra, "house_power_w")) is not None:
        for n in range(1, PHASES + 1):
            out["extra"][f"ac_consumption_l{n}_w"] = house / PHASES
    return out


def _vebus_state(plant_state: object, ac_power: float) -> str:
    if plant_state in ("off", "fault"):
        return str(plant_state)
    return "inverting" if ac_power >= 0.0 else "bulk"


def multi(sections: PlantSections) -> DeviceSections:
    """com.victronenergy.vebus: AC in = the grid connection's L1, AC out = its loads."""
    grid = _section(sections, "grid")
    inverter = _section(sections, "inverter")
    battery = _section(sections, "battery")
    extra = _section(sections, "extra")
    ac = _float(inverter, "ac_power_w") or 0.0
    volts = _list(grid, "phase_voltage_v")
    powers = _list(grid, "phase_power_w")
    out: DeviceSections = {"inverter": {}, "battery": {}, "extra": {"vebus_phase_count": 1.0}}
    vebus = out["extra"]
    if len(volts) == PHASES and len(powers) == PHASES:
        v, p = volts[MULTI_PHASE], powers[MULTI_PHASE]
        load = p + ac  # the loads on AC out: what mains gives plus what the Multi adds
        vebus["vebus_in_voltage_l1_v"] = v
        vebus["vebus_in_current_l1_a"] = p / v if v else 0.0
        vebus["vebus_in_power_l1_w"] = p
        vebus["vebus_out_power_l1_w"] = load
        out["inverter"]["ac_voltage_v"] = v
        out["inverter"]["ac_current_a"] = load / v if v else 0.0
    if (hz := _float(grid, "frequency_hz")) is not None:
        vebus["vebus_in_frequency_hz"] = hz
    if (hz := _float(inverter, "ac_frequency_hz")) is not None:
        out["inverter"]["ac_frequency_hz"] = hz
    out["inverter"]["state"] = _vebus_state(inverter.get("state"), ac)
    if (dc_volts := _float(extra, "inverter_dc_voltage_v")) is not None:
        out["battery"]["voltage_v"] = dc_volts
    if (dc_amps := _float(extra, "inverter_dc_current_a")) is not None:
        vebus["vebus_dc_current_a"] = dc_amps  # > 0 drawn from the battery
    for name in ("soc_pct", "temperature_c"):
        if name in battery:
            out["battery"][name] = battery[name]
    return out


def mppt(sections: PlantSections) -> DeviceSections:
    """com.victronenergy.solarcharger: the plant's charge controller."""
    solar = _section(sections, "solar")
    extra = _section(sections, "extra")
    out: DeviceSections = {"solar": {}, "extra": {}}
    for name in ("pv_voltage_v", "pv_current_a", "pv_power_w", "energy_today_wh"):
        if name in solar:
            out["solar"][name] = solar[name]
    for name in ("charger_battery_voltage_v", "charger_battery_current_a", "charger_temperature_c"):
        if name in extra:
            out["extra"][name] = extra[name]
    charging = (_float(extra, "charger_output_power_w") or 0.0) > 0.0
    out["extra"]["charger_state_code"] = CHARGER_BULK if charging else CHARGER_OFF
    if (total := _float(solar, "energy_total_wh")) is not None:
        out["extra"]["charger_user_yield_wh"] = total
    return out


def bms(sections: PlantSections) -> DeviceSections:
    """com.victronenergy.battery: the CAN-bus BMS."""
    battery = _section(sections, "battery")
    extra = _section(sections, "extra")
    out: DeviceSections = {"battery": {k: v for k, v in battery.items() if k != "state"}}
    bms_extra: dict[str, object] = {}
    full = _float(extra, "bms_full_capacity_ah")
    remaining = _float(extra, "bms_remaining_capacity_ah")
    if full is not None and remaining is not None:
        bms_extra["bms_consumed_ah"] = -(full - remaining)  # "Always negative"
        bms_extra["bms_capacity_ah"] = full
    for name in ("bms_cycle_count", "bms_discharged_energy_wh", "bms_charged_energy_wh"):
        if name in extra:
            bms_extra[name] = extra[name]
    out["extra"] = bms_extra
    return out


# The GX's serial number (victron.SYSTEM_SERIAL): its VRM portal id, 12 hex digits.
_SYSTEM_SERIAL: Final = Point(
    "Serial (System)",
    victron.SYSTEM_SERIAL,
    RegisterType.HOLDING,
    DataType.STRING,
    length=victron.SYSTEM_SERIAL_REGISTERS,
    constant="c0619ab0e5e5",
)


def _served(reg_map: RegisterMap) -> RegisterMap:
    """The map as the GX serves it: its holes refused on function 0x04 too."""
    holes = reg_map.holes + tuple(
        Hole(RegisterType.INPUT, hole.first, hole.last) for hole in reg_map.holes
    )
    extra = (_SYSTEM_SERIAL,) if reg_map is SYSTEM else ()
    return RegisterMap(
        name=reg_map.name,
        source=reg_map.source,
        points=extra + reg_map.points,
        max_count=reg_map.max_count,
        holes=holes,
    )


def _input_alike(image: RegisterImage) -> None:
    # dbus_modbustcp backend.cpp: ReadHoldingRegisters and ReadInputRegisters alike.
    image[RegisterType.INPUT] = dict(image.get(RegisterType.HOLDING, {}))


def _device(
    unit: int,
    reg_map: RegisterMap,
    role: Role,
    name: str,
    measures: Callable[[PlantSections], DeviceSections],
    what: str,
) -> SimulatedDevice:
    return SimulatedDevice(
        unit=unit,
        profile=reg_map.name,
        role=role,
        name=name,
        served=_served(reg_map),
        measures=measures,
        fill=_input_alike,
        description=f"{what} ({reg_map.name})",
    )


LAYOUT: Final = SiteLayout(
    name="victron",
    description=(
        "a Victron ESS behind one Cerbo GX: system (unit 100), MultiPlus-II (227), "
        "SmartSolar MPPT (226), CAN-bus BMS (225)"
    ),
    devices=(
        _device(SYSTEM_UNIT, SYSTEM, Role.GRID, "gx", gx_system, "GX system service"),
        _device(VEBUS_UNIT, VEBUS, Role.INVERTER, "multi", multi, "MultiPlus-II on VE.Bus"),
        _device(SOLARCHARGER_UNIT, SOLARCHARGER, Role.SOLAR, "mppt", mppt, "SmartSolar MPPT"),
        _device(BATTERY_UNIT, BATTERY, Role.BATTERY, "bms", bms, "CAN-bus BMS"),
    ),
    absent_unit_code=GATEWAY_PATH_UNAVAILABLE,
    absent_unit_addresses=GX_LAST_REGISTER + 1,
)
