"""The plant as a site with several devices per role: two inverters, two stacks, three meters.

Pure logic. ``ems sim --site multi`` serves seven devices on one Modbus TCP
port (a gateway with a unit id per device), read as a site of several devices
per role (docs/configuration.md, "Several devices per role"):

| unit | device | profile | counts toward |
| --- | --- | --- | --- |
| 1 | inverter east (SunSpec models 1 + 103) | ``sunspec`` | inverter total |
| 2 | inverter west (SunSpec models 1 + 103) | ``sunspec`` | inverter total |
| 10 | main meter | ``eastron_sdm630`` | grid total |
| 11 | heat pump sub-meter | ``eastron_sdm120`` | nothing (``total = false``) |
| 12 | EV charger sub-meter | ``eastron_sdm120`` | nothing (``total = false``) |
| 20 | battery stack A (Seplos V3) | ``seplos_v3`` | battery total |
| 21 | battery stack B (Seplos V3) | ``seplos_v3`` | battery total |

The devices split the plant, so the site's totals the edge agent computes are
the plant's own values within register resolution:

- The plant's inverter is split between east and west in :data:`INVERTER_SHARES`:
  each shows its share of the AC and DC power, AC current and energy counter,
  and the plant's voltage, frequency, temperature and state (one grid, one
  cabinet climate).
- The battery is split between two stacks in :data:`STACK_SHARES` of its
  capacity: each stack's current, power and capacities (rated, full, remaining)
  are its share; voltage, cells, temperatures, state of charge and health are
  the battery's (stacks in parallel share the bus voltage and balance).
- The main meter is the plant's grid meter. The plant's house load
  (simulation/plant/load.py) has no heat pump nor EV charger component, so
  the sub-meters show a documented split of it: the heat pump
  :data:`HEAT_PUMP_SHARE` of the house's power on L1, the EV charger
  :data:`EV_SHARE` on L2, at fixed power factors. The plant keeps no per-load
  energy, so their energy counters read 0. Their loads are inside the main
  meter's power: the config's ``total = false`` keeps them out of the grid total.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Final

from drivers.profile import RegisterMap
from drivers.profiles import eastron, sunspec
from drivers.profiles.eastron import SDM120
from simulation.default_site import SERVED_MAPS, Unit, _sdm630_documented, device_sections
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

PV_INVERTER_MODELS: Final = (1, 103)
PV_INVERTER_MAP: Final = sunspec.register_map(
    sunspec.layout(PV_INVERTER_MODELS, base=sunspec.BASE_ADDRESSES[0])
)

INVERTER_SHARES: Final = {"inverter_east": 0.6, "inverter_west": 0.4}
# Each inverter's serial number, its common model's SN (json/model_1.json).
INVERTER_SERIALS: Final = {"inverter_east": "SIM-EAST-01", "inverter_west": "SIM-WEST-01"}


def _with_serial(reg_map: RegisterMap, serial: str) -> RegisterMap:
    """``reg_map`` with its common model's SN set to ``serial``."""
    points = tuple(
        dataclasses.replace(p, constant=serial) if p.name.endswith(".1.SN") else p
        for p in reg_map.points
    )
    return dataclasses.replace(reg_map, points=points)


STACK_SHARES: Final = {"stack_a": 0.6, "stack_b": 0.4}
HEAT_PUMP_SHARE: Final = 0.35
EV_SHARE: Final = 0.25
# A heat pump's compressor drive and an EV charger's rectifier: typical power factors.
HEAT_PUMP_POWER_FACTOR: Final = 0.95
EV_POWER_FACTOR: Final = 0.99

# Fields that are a device's share of the plant's; the others are the plant's own.
_INVERTER_ADDITIVE: Final = ("ac_power_w", "ac_current_a", "dc_power_w", "energy_total_wh")
_BATTERY_ADDITIVE: Final = ("power_w", "current_a")
_BMS_ADDITIVE_EXTRA: Final = (
    "bms_rated_capacity_ah",
    "bms_full_capacity_ah",
    "bms_remaining_capacity_ah",
    "bms_max_charge_current_a",
    "bms_max_discharge_current_a",
    "bms_charged_energy_wh",
    "bms_discharged_energy_wh",
)


def _scaled(
    values: Mapping[str, object], share: float, names: tuple[str, ...]
) -> dict[str, object]:
    return {
        name: value * share if name in names and isinstance(value, float | int) else value
        for name, value in values.items()
    }


def inverter(share: float) -> Callable[[PlantSections], DeviceSections]:
    """What one of the PV inverters measures: its share of the plant's inverter."""

    def measures(sections: PlantSections) -> DeviceSections:
        extra = sections.get("extra", {})
        out: DeviceSections = {
            "inverter": _scaled(sections.get("inverter", {}), share, _INVERTER_ADDITIVE),
            "extra": {},
        }
        if isinstance(volts := extra.get("inverter_dc_voltage_v"), float):
            out["extra"]["inverter_dc_voltage_v"] = volts
        if isinstance(amps := extra.get("inverter_dc_current_a"), float):
            out["extra"]["inverter_dc_current_a"] = amps * share
        return out

    return measures


def stack(share: float) -> Callable[[PlantSections], DeviceSections]:
    """What one battery stack's BMS measures: its share of the plant's battery."""

    def measures(sections: PlantSections) -> DeviceSections:
        part = {
            "battery": _scaled(sections.get("battery", {}), share, _BATTERY_ADDITIVE),
            "extra": _scaled(sections.get("extra", {}), share, _BMS_ADDITIVE_EXTRA),
        }
        return device_sections(Unit.BMS, part)

    return measures


def sub_meter(
    share: float, phase: int, power_factor: float
) -> Callable[[PlantSections], DeviceSections]:
    """What a single-phase sub-meter on one of the house's loads measures."""

    def measures(sections: PlantSections) -> DeviceSections:
        grid = sections.get("grid", {})
        house = sections.get("extra", {}).get("house_power_w")
        phases = grid.get("phase_voltage_v")
        volts = float(phases[phase]) if isinstance(phases, list) else grid.get("voltage_v")
        power = float(house) * share if isinstance(house, float | int) else 0.0
        meter: dict[str, object] = {
            "power_w": power,
            "power_factor": power_factor,
            "import_energy_wh": 0.0,
            "export_energy_wh": 0.0,
        }
        if isinstance(volts, float) and volts > 0:
            meter["voltage_v"] = volts
            meter["current_a"] = power / (volts * power_factor)
        if isinstance(hz := grid.get("frequency_hz"), float):
            meter["frequency_hz"] = hz
        return {"grid": meter}

    return measures


def _main_meter(sections: PlantSections) -> DeviceSections:
    return device_sections(Unit.GRID_METER, sections)


LAYOUT: Final = SiteLayout(
    name="multi",
    description=(
        "several devices per role: two SunSpec inverters (east, west), an SDM630 main meter, "
        "SDM120 sub-meters on a heat pump and an EV charger, two Seplos V3 battery stacks"
    ),
    devices=(
        *(
            SimulatedDevice(
                unit=unit,
                profile="sunspec",
                role=Role.INVERTER,
                name=name,
                served=_with_serial(PV_INVERTER_MAP, INVERTER_SERIALS[name]),
                measures=inverter(share),
                total=True,
                description=f"PV inverter {name[9:]} (sunspec, models 1 + 103 at 40000)",
            )
            for unit, (name, share) in zip((1, 2), INVERTER_SHARES.items(), strict=True)
        ),
        SimulatedDevice(
            unit=10,
            profile="eastron_sdm630",
            role=Role.GRID,
            name="meter_main",
            served=SERVED_MAPS[Unit.GRID_METER],
            measures=_main_meter,
            fill=_sdm630_documented,
            description="main meter (eastron_sdm630)",
        ),
        SimulatedDevice(
            unit=11,
            profile="eastron_sdm120",
            role=Role.GRID,
            name="heat_pump",
            served=eastron.served(SDM120, 21_000_001),
            measures=sub_meter(HEAT_PUMP_SHARE, 0, HEAT_PUMP_POWER_FACTOR),
            description="heat pump sub-meter (eastron_sdm120, total = false)",
            total=False,
        ),
        SimulatedDevice(
            unit=12,
            profile="eastron_sdm120",
            role=Role.GRID,
            name="ev_charger",
            served=eastron.served(SDM120, 21_000_002),
            measures=sub_meter(EV_SHARE, 1, EV_POWER_FACTOR),
            description="EV charger sub-meter (eastron_sdm120, total = false)",
            total=False,
        ),
        *(
            SimulatedDevice(
                unit=unit,
                profile="seplos_v3",
                role=Role.BATTERY,
                name=name,
                served=SERVED_MAPS[Unit.BMS],
                measures=stack(share),
                total=True,
                description=f"battery {name.replace('_', ' ')} (seplos_v3)",
            )
            for unit, (name, share) in zip((20, 21), STACK_SHARES.items(), strict=True)
        ),
    ),
)
