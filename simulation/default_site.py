"""The simulated site as four Modbus devices: plant sections -> register images.

Pure logic. Each device of the default site (``ems sim``) encodes the plant's
protocol sections with the very register map the drivers decode with
(:mod:`drivers.profiles`), so what the edge reads back is the plant's state
within each register's resolution:

| unit | device | register map |
| --- | --- | --- |
| 1 | battery inverter | SunSpec: common model 1, inverter 103, storage 124 at 40000 |
| 2 | grid meter | Eastron SDM630 |
| 3 | solar charge controller | EPEver Tracer |
| 4 | battery BMS | Seplos V3 |

A device shows what it measures: the meter the grid, the charger its PV side
and the battery as it sees it, the BMS the pack, the inverter its AC and DC
sides and the storage it drives. Values a device computes that the plant does
not give directly (the BMS's average cell voltage, its hottest and coldest
sensor) are computed here, from the plant's own numbers.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from drivers.profile import RegisterImage, RegisterMap
from drivers.profiles import eastron, sunspec
from drivers.profiles.eastron import SDM630
from drivers.profiles.epever import CHARGING_MODE_MPPT, TRACER, TRACER_SERVED
from drivers.profiles.seplos import SEPLOS_V3
from drivers.registers import RegisterType
from simulation.layout import PlantSections, SimulatedDevice, SiteLayout, encode_layout
from simulation.plant.converters import ChargerSpec
from telemetry.roles import Role


class Unit(enum.IntEnum):
    """Default unit ids on the simulated bus (``ems sim`` without ``--site``)."""

    INVERTER = 1
    GRID_METER = 2
    CHARGER = 3
    BMS = 4


INVERTER_MODELS: Final = (1, 103, 124)
INVERTER_CHAIN: Final = sunspec.layout(INVERTER_MODELS, base=sunspec.BASE_ADDRESSES[0])
INVERTER_MAP: Final = sunspec.register_map(INVERTER_CHAIN)

REGISTER_MAPS: Final[Mapping[Unit, RegisterMap]] = {
    Unit.INVERTER: INVERTER_MAP,
    Unit.GRID_METER: SDM630,
    Unit.CHARGER: TRACER,
    Unit.BMS: SEPLOS_V3,
}


# What each device serves: the map the edge polls, and for the Tracer also the
# registers it answers but the edge does not read (rated data, battery statistics).
# The meter answers its serial number too (drivers/profiles/eastron.py, FC00).
SERVED_MAPS: Final[Mapping[Unit, RegisterMap]] = {
    **REGISTER_MAPS,
    Unit.GRID_METER: eastron.served(SDM630, 20_123_456),
    Unit.CHARGER: TRACER_SERVED,
}


def _tracer_rated(spec: ChargerSpec) -> dict[str, object]:
    """The Tracer's "Rated data" block (EPEver V2.5, 0x3000-0x300E) for the plant's charger."""
    return {
        "charger_rated_input_voltage_v": spec.max_pv_voltage_v,
        "charger_rated_input_current_a": spec.rated_charge_current_a,
        "charger_rated_input_power_w": spec.rated_input_power_w,
        "charger_rated_battery_voltage_v": spec.system_voltage_v,
        "charger_rated_charge_current_a": spec.rated_charge_current_a,
        "charger_rated_charge_power_w": spec.rated_charge_current_a * spec.system_voltage_v,
        "charger_charging_mode": float(CHARGING_MODE_MPPT),
        # The 6415AN has no load output.
        "charger_rated_load_current_a": 0.0,
    }


_RATED: Final = _tracer_rated(ChargerSpec())


@dataclass(frozen=True)
class DeviceImage:
    """One device's registers at one instant."""

    unit: Unit
    image: RegisterImage


def _section(sections: Mapping[str, Mapping[str, object]], name: str) -> dict[str, object]:
    return dict(sections.get(name, {}))


def _numbers(values: Mapping[str, object], prefix: str) -> list[float]:
    return [float(v) for k, v in values.items() if k.startswith(prefix) and isinstance(v, float)]


def device_sections(
    unit: Unit, sections: Mapping[str, Mapping[str, object]]
) -> dict[str, dict[str, object]]:
    """What ``unit`` measures, in protocol form (the input of its encoder)."""
    extra = _section(sections, "extra")
    battery = _section(sections, "battery")
    out: dict[str, dict[str, object]]
    if unit is Unit.INVERTER:
        out = {
            "inverter": _section(sections, "inverter"),
            "battery": {k: battery[k] for k in ("soc_pct", "voltage_v", "state") if k in battery},
            "extra": {
                k: extra[k]
                for k in ("inverter_dc_current_a", "inverter_dc_voltage_v")
                if k in extra
            },
        }
        rated = extra.get("inverter_rated_power_w")
        if isinstance(rated, float):
            out["extra"]["storage_max_charge_w"] = rated
    elif unit is Unit.GRID_METER:
        out = {"grid": _section(sections, "grid"), "extra": extra}
    elif unit is Unit.CHARGER:
        charger_extra: dict[str, object] = dict(extra)
        if "temperature_c" in battery:
            charger_extra["charger_battery_temperature_c"] = battery["temperature_c"]
        if "soc_pct" in battery:
            charger_extra["charger_battery_soc_pct"] = battery["soc_pct"]
        charger_extra.update(_RATED)
        if "voltage_v" in battery:
            charger_extra["charger_stat_battery_voltage_v"] = battery["voltage_v"]
        current = battery.get("current_a")
        if isinstance(current, float):
            # EPEver counts the battery current > 0 charging; the protocol > 0 discharging.
            charger_extra["charger_stat_battery_current_a"] = -current
        out = {"solar": _section(sections, "solar"), "extra": charger_extra}
    else:
        bms_extra: dict[str, object] = dict(extra)
        cells = _numbers(extra, "bms_cell_voltage_")
        if cells:
            bms_extra["bms_cell_voltage_avg_v"] = statistics.fmean(cells)
        temperatures = _numbers(extra, "bms_cell_temperature_")
        if temperatures:
            bms_extra["bms_cell_temperature_max_c"] = max(temperatures)
            bms_extra["bms_cell_temperature_min_c"] = min(temperatures)
        if "outdoor_temperature_c" in extra:
            bms_extra["bms_ambient_temperature_c"] = extra["outdoor_temperature_c"]
        if "temperature_c" in battery:
            bms_extra["bms_power_temperature_c"] = battery["temperature_c"]
        out = {"battery": battery, "extra": bms_extra}
    return out


# SDM630 Modbus Protocol: input parameters run from 30001 to 30381 (float32 each);
# those we do not simulate read as 0.0, so a client may read any documented block.
SDM630_LAST_INPUT: Final = 30382 - 30001


def _sdm630_documented(image: RegisterImage) -> None:
    meter = image.setdefault(RegisterType.INPUT, {})
    for address in range(SDM630_LAST_INPUT + 1):
        meter.setdefault(address, 0)


def _measures(unit: Unit) -> Callable[[PlantSections], dict[str, dict[str, object]]]:
    return lambda sections: device_sections(unit, sections)


_ROLES: Final = {
    Unit.INVERTER: (Role.INVERTER, "inverter", "sunspec"),
    Unit.GRID_METER: (Role.GRID, "meter", "eastron_sdm630"),
    Unit.CHARGER: (Role.SOLAR, "charger", "epever_tracer"),
    Unit.BMS: (Role.BATTERY, "bms", "seplos_v3"),
}
_DESCRIPTIONS: Final = {
    Unit.INVERTER: "battery inverter (sunspec, models 1 + 103 + 124 at 40000)",
    Unit.GRID_METER: "grid meter (eastron_sdm630)",
    Unit.CHARGER: "solar charge controller (epever_tracer)",
    Unit.BMS: "battery BMS (seplos_v3)",
}

DEFAULT_LAYOUT: Final = SiteLayout(
    name="default",
    description=(
        "an off-grid-style kit: SunSpec battery inverter, Eastron SDM630 grid meter, "
        "EPEver Tracer charge controller and Seplos V3 BMS on one bus"
    ),
    devices=tuple(
        SimulatedDevice(
            unit=int(unit),
            profile=_ROLES[unit][2],
            role=_ROLES[unit][0],
            name=_ROLES[unit][1],
            served=SERVED_MAPS[unit],
            measures=_measures(unit),
            fill=_sdm630_documented if unit is Unit.GRID_METER else None,
            description=_DESCRIPTIONS[unit],
        )
        for unit in Unit
    ),
)


def encode_site(sections: Mapping[str, Mapping[str, object]]) -> dict[Unit, RegisterImage]:
    """Every device's register image for one plant state (the default layout)."""
    images = encode_layout(DEFAULT_LAYOUT, sections)
    return {Unit(unit): image for unit, image in images.items()}
