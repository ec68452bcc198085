"""The simulated site's physics, with no I/O at all.

PV array -> MPPT charge controller -> battery (with BMS) -> battery inverter -> house,
with a grid meter at the connection point. One concept per module:

- ``sun``: solar position and clear-sky irradiance
- ``weather``: seeded cloud cover and outdoor temperature
- ``pv``: the array's maximum-power and operating points
- ``converters``: the charge controller's and the inverter's losses and ratings
- ``battery``: the pack and its BMS (OCV, cells, SOC, limits, SOH, cycles)
- ``load``: the house's base load and appliance events
- ``grid``: the slack: phase voltages, frequency, currents, power factor
- ``dispatch``: the self-consumption power flow
- ``scenarios``: named weather and starting points
- ``state``: ``PlantState`` and ``sections()`` in the wire protocol's terms
- ``equipment``: ``SiteSpec``, the site's equipment as one bundle of specs
- ``model``: ``Plant``, which wires them together and steps time

Usage::

    plant = Plant("sunny", seed=7, start=datetime.now(UTC))
    state = plant.step(1.0)
    # {"inverter": {...}, "grid": {...}, "solar": {...}, "battery": {...}, "extra": {...}}
    sections = state.sections()
"""

from simulation.plant.battery import BatterySpec, BatteryState, BatteryStatus
from simulation.plant.converters import ChargerSpec, InverterSpec, LossModel
from simulation.plant.dispatch import PowerFlow
from simulation.plant.equipment import SiteSpec
from simulation.plant.grid import GridSpec
from simulation.plant.load import HouseSpec
from simulation.plant.model import DEFAULT_LATITUDE_DEG, DEFAULT_LONGITUDE_DEG, Plant
from simulation.plant.pv import PvArraySpec
from simulation.plant.scenarios import SCENARIOS, Scenario, ScenarioSpec
from simulation.plant.state import (
    ChargerState,
    ChargeStatus,
    EnergyCounters,
    GridState,
    HouseState,
    InverterState,
    InverterStatus,
    PlantState,
    PvState,
    Sections,
    SunState,
)

__all__ = [
    "DEFAULT_LATITUDE_DEG",
    "DEFAULT_LONGITUDE_DEG",
    "SCENARIOS",
    "BatterySpec",
    "BatteryState",
    "BatteryStatus",
    "ChargeStatus",
    "ChargerSpec",
    "ChargerState",
    "EnergyCounters",
    "GridSpec",
    "GridState",
    "HouseSpec",
    "HouseState",
    "InverterSpec",
    "InverterState",
    "InverterStatus",
    "LossModel",
    "Plant",
    "PlantState",
    "PowerFlow",
    "PvArraySpec",
    "PvState",
    "Scenario",
    "ScenarioSpec",
    "Sections",
    "SiteSpec",
    "SunState",
]
