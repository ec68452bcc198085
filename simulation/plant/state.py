"""What the plant looks like at one instant: ``PlantState`` and its typed parts.

``PlantState.sections()`` gives the reading's sections with exactly the field names,
units and signs of docs/protocol.md ("A reading"): ``grid.power_w`` > 0 imports,
``battery.power_w`` / ``current_a`` > 0 discharge, ``solar.pv_power_w`` >= 0,
``inverter.ac_power_w`` > 0 delivers to the AC side.

Powers, currents and voltages describe the step that ended at ``time`` (held over
it); SOC, temperatures and energy counters are their values at ``time``.

``extra`` (flat name -> number; every name below is always present):

| name | unit | meaning (device) |
| --- | --- | --- |
| house_power_w | W | the house's consumption (site) |
| pv_available_power_w | W | what the array could give at its MPP now (site) |
| pv_curtailed_w | W | available minus drawn: battery full and inverter at limit (charger) |
| pv_cell_temperature_c | °C | PV module cell temperature (site) |
| outdoor_temperature_c | °C | air temperature at the array (site) |
| sun_elevation_deg | ° | the sun above the horizon, < 0 at night (site) |
| cloud_cover_pct | % | the scenario's cloud cover now (site) |
| grid_reactive_power_var | var | total reactive power, > 0 inductive import (meter) |
| grid_apparent_power_va | VA | total apparent power (meter) |
| grid_phase_current_lN_a (N = 1..3) | A | line currents, magnitudes (meter) |
| grid_phase_reactive_power_lN_var (N = 1..3) | var | per-phase reactive power (meter) |
| inverter_dc_voltage_v | V | DC input voltage = battery terminal voltage (inverter) |
| inverter_dc_current_a | A | DC input current, > 0 drawn from the DC bus (inverter) |
| inverter_rated_power_w | W | continuous AC rating (inverter) |
| charger_battery_voltage_v | V | battery voltage at the charger (charger) |
| charger_battery_current_a | A | charging current into the DC bus, >= 0 (charger) |
| charger_output_power_w | W | charging power into the DC bus (charger) |
| charger_temperature_c | °C | heat-sink temperature (charger) |
| charger_charging_status | code | EPEver 0x3201 D3-D2: 0 none, 1 float, 2 boost, 3 equalization |
| bms_cycle_count | cycles | whole cycles, throughput-based (BMS) |
| bms_rated_capacity_ah | Ah | nameplate capacity (BMS) |
| bms_full_capacity_ah | Ah | capacity now, rated × SOH (BMS) |
| bms_remaining_capacity_ah | Ah | charge held now (BMS) |
| bms_max_charge_current_a | A | charge current the BMS allows now (BMS) |
| bms_max_discharge_current_a | A | discharge current the BMS allows now (BMS) |
| bms_cell_voltage_NN_v (NN = 01..16) | V | each cell's voltage, one per cell in series (BMS) |
| bms_cell_temperature_N_c (N = 1..4) | °C | the pack's cell temperature sensors (BMS) |
| bms_charged_energy_wh | Wh | terminal energy into the pack (BMS) |
| bms_discharged_energy_wh | Wh | terminal energy out of the pack (BMS) |
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from simulation.plant.battery import BatteryState
from simulation.plant.dispatch import PowerFlow
from simulation.plant.grid import GridMeasurement
from simulation.plant.load import HouseLoad
from simulation.plant.scenarios import Scenario

SectionValue = float | str | list[float]
Sections = dict[str, dict[str, SectionValue]]


class InverterStatus(enum.StrEnum):
    """Operating state; the names of SunSpec model 103's ``St`` enumeration, lower case."""

    OFF = "off"
    SLEEPING = "sleeping"
    STARTING = "starting"
    MPPT = "mppt"  # SunSpec's name for normal operation, also for battery inverters
    THROTTLED = "throttled"
    SHUTTING_DOWN = "shutting_down"
    FAULT = "fault"
    STANDBY = "standby"


class ChargeStatus(enum.IntEnum):
    """EPEver Tracer charging status, register 0x3201 bits D3-D2 (Tracer-AN protocol v2.5)."""

    NO_CHARGING = 0
    FLOAT = 1
    BOOST = 2
    EQUALIZATION = 3


@dataclass(frozen=True, slots=True)
class SunState:
    elevation_deg: float
    azimuth_deg: float
    cloud_cover: float
    clear_sky_poa_w_m2: float
    poa_w_m2: float
    outdoor_temperature_c: float


@dataclass(frozen=True, slots=True)
class PvState:
    available_power_w: float
    power_w: float
    voltage_v: float
    current_a: float
    cell_temperature_c: float
    energy_today_wh: float
    energy_total_wh: float

    @property
    def curtailed_w(self) -> float:
        return max(0.0, self.available_power_w - self.power_w)


@dataclass(frozen=True, slots=True)
class ChargerState:
    input_power_w: float
    output_power_w: float
    loss_w: float
    battery_voltage_v: float
    battery_current_a: float
    temperature_c: float
    status: ChargeStatus


@dataclass(frozen=True, slots=True)
class InverterState:
    ac_power_w: float
    dc_power_w: float
    loss_w: float
    ac_voltage_v: float
    ac_current_a: float
    ac_frequency_hz: float
    dc_voltage_v: float
    dc_current_a: float
    temperature_c: float
    energy_total_wh: float
    rated_power_w: float
    status: InverterStatus


@dataclass(frozen=True, slots=True)
class HouseState:
    load: HouseLoad
    energy_wh: float

    @property
    def power_w(self) -> float:
        return self.load.power_w


@dataclass(frozen=True, slots=True)
class GridState:
    meter: GridMeasurement
    import_energy_wh: float
    export_energy_wh: float

    @property
    def power_w(self) -> float:
        return self.meter.power_w


@dataclass(frozen=True, slots=True)
class EnergyCounters:
    """Energies integrated since the plant started (Wh), for whole-run balance checks."""

    pv_wh: float = 0.0
    charger_loss_wh: float = 0.0
    charger_out_wh: float = 0.0
    inverter_dc_wh: float = 0.0
    inverter_ac_wh: float = 0.0
    inverter_loss_wh: float = 0.0
    battery_discharged_wh: float = 0.0
    battery_charged_wh: float = 0.0
    grid_import_wh: float = 0.0
    grid_export_wh: float = 0.0
    house_wh: float = 0.0
    curtailed_wh: float = 0.0


@dataclass(frozen=True, slots=True)
class PlantState:
    """The whole site at ``time`` (UTC), after a step of ``dt_s`` seconds (0 at the start)."""

    time: datetime
    dt_s: float
    scenario: Scenario
    sun: SunState
    pv: PvState
    charger: ChargerState
    battery: BatteryState
    inverter: InverterState
    house: HouseState
    grid: GridState
    flow: PowerFlow
    energy: EnergyCounters

    def sections(self) -> Sections:
        """The reading's sections (docs/protocol.md names, units and signs) plus ``extra``."""
        meter = self.grid.meter
        battery = self.battery
        return {
            "inverter": {
                "ac_power_w": self.inverter.ac_power_w,
                "ac_voltage_v": self.inverter.ac_voltage_v,
                "ac_current_a": self.inverter.ac_current_a,
                "ac_frequency_hz": self.inverter.ac_frequency_hz,
                "dc_power_w": self.inverter.dc_power_w,
                "energy_total_wh": self.inverter.energy_total_wh,
                "temperature_c": self.inverter.temperature_c,
                "state": self.inverter.status.value,
            },
            "grid": {
                "power_w": meter.power_w,
                "voltage_v": meter.voltage_v,
                "current_a": meter.current_a,
                "frequency_hz": meter.frequency_hz,
                "power_factor": meter.power_factor,
                "import_energy_wh": self.grid.import_energy_wh,
                "export_energy_wh": self.grid.export_energy_wh,
                "phase_voltage_v": list(meter.phase_voltage_v),
                "phase_power_w": list(meter.phase_power_w),
            },
            "solar": {
                "pv_power_w": self.pv.power_w,
                "pv_voltage_v": self.pv.voltage_v,
                "pv_current_a": self.pv.current_a,
                "energy_today_wh": self.pv.energy_today_wh,
                "energy_total_wh": self.pv.energy_total_wh,
            },
            "battery": {
                "soc_pct": battery.soc_pct,
                "soh_pct": battery.soh_pct,
                "power_w": battery.power_w,
                "voltage_v": battery.voltage_v,
                "current_a": battery.current_a,
                "temperature_c": battery.temperature_c,
                "cell_voltage_min_v": battery.cell_voltage_min_v,
                "cell_voltage_max_v": battery.cell_voltage_max_v,
                "state": battery.status.value,
            },
            "extra": {**self.extra()},
        }

    def extra(self) -> dict[str, float]:
        """Device values beyond the protocol's fields (named in the module docstring)."""
        meter = self.grid.meter
        battery = self.battery
        extra: dict[str, float] = {
            "house_power_w": self.house.power_w,
            "pv_available_power_w": self.pv.available_power_w,
            "pv_curtailed_w": self.pv.curtailed_w,
            "pv_cell_temperature_c": self.pv.cell_temperature_c,
            "outdoor_temperature_c": self.sun.outdoor_temperature_c,
            "sun_elevation_deg": self.sun.elevation_deg,
            "cloud_cover_pct": self.sun.cloud_cover * 100.0,
            "grid_reactive_power_var": meter.reactive_var,
            "grid_apparent_power_va": meter.apparent_va,
            "inverter_dc_voltage_v": self.inverter.dc_voltage_v,
            "inverter_dc_current_a": self.inverter.dc_current_a,
            "inverter_rated_power_w": self.inverter.rated_power_w,
            "charger_battery_voltage_v": self.charger.battery_voltage_v,
            "charger_battery_current_a": self.charger.battery_current_a,
            "charger_output_power_w": self.charger.output_power_w,
            "charger_temperature_c": self.charger.temperature_c,
            "charger_charging_status": float(self.charger.status.value),
            "bms_cycle_count": float(int(battery.cycle_count)),
            "bms_rated_capacity_ah": battery.rated_capacity_ah,
            "bms_full_capacity_ah": battery.full_capacity_ah,
            "bms_remaining_capacity_ah": battery.remaining_ah,
            "bms_max_charge_current_a": battery.max_charge_current_a,
            "bms_max_discharge_current_a": battery.max_discharge_current_a,
            "bms_charged_energy_wh": battery.charged_wh,
            "bms_discharged_energy_wh": battery.discharged_wh,
        }
        for n, (current, reactive) in enumerate(
            zip(meter.phase_current_a, meter.phase_reactive_var, strict=True), start=1
        ):
            extra[f"grid_phase_current_l{n}_a"] = current
            extra[f"grid_phase_reactive_power_l{n}_var"] = reactive
        for n, volts in enumerate(battery.cell_voltages_v, start=1):
            extra[f"bms_cell_voltage_{n:02d}_v"] = volts
        for n, celsius in enumerate(battery.cell_temperatures_c, start=1):
            extra[f"bms_cell_temperature_{n}_c"] = celsius
        return extra
