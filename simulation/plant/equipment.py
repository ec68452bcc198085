"""The simulated site's equipment, as one bundle of specs (all defaults are a typical home)."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulation.plant.battery import BatterySpec
from simulation.plant.converters import ChargerSpec, InverterSpec
from simulation.plant.grid import GridSpec
from simulation.plant.load import HouseSpec
from simulation.plant.pv import PvArraySpec


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A 3.6 kWp array on a 60 A MPPT charger, a 14.3 kWh 16S LFP pack, a 5 kW inverter on L1.

    The equipment sits indoors (a utility room): its air is ``room_base_c`` plus
    ``room_coupling`` of the outdoor temperature's distance from 10 °C.

    ``max_battery_charge_w`` / ``max_battery_discharge_w`` are the battery setpoints
    every battery inverter offers (at the pack's terminals, within what the BMS
    allows): a sunny surplus beyond 1.5 kW is exported rather than stored, and a
    load beyond what the PV and 2 kW from the pack give is imported, as on most
    home systems whose pack is not sized to carry the whole house.
    """

    array: PvArraySpec = field(default_factory=PvArraySpec)
    charger: ChargerSpec = field(default_factory=ChargerSpec)
    battery: BatterySpec = field(default_factory=BatterySpec)
    inverter: InverterSpec = field(default_factory=InverterSpec)
    house: HouseSpec = field(default_factory=HouseSpec)
    grid: GridSpec = field(default_factory=GridSpec)
    max_battery_charge_w: float = 1500.0
    max_battery_discharge_w: float = 2000.0
    room_base_c: float = 18.0
    room_coupling: float = 0.25

    def room_temperature_c(self, outdoor_c: float) -> float:
        return self.room_base_c + self.room_coupling * (outdoor_c - 10.0)
