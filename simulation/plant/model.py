"""The plant: the site's parts wired together and advanced through simulated time.

``Plant.step(dt_s)`` moves simulated time forward by ``dt_s`` seconds and returns the
new ``PlantState``; pacing against the wall clock (and ``--speed``) is the caller's
business. Each step samples the world at its end (sun, clouds, house load, grid),
splits the powers with the self-consumption policy (``dispatch.py``), holds them
over the step to integrate the battery and the energy counters, and relaxes the
temperatures exactly (``exp(-dt / tau)``), so a one-hour step is as stable and as
balanced as a one-second one.

Everything random comes from ``seed`` through ``noise.py``: the same seed and the
same steps give the same series, and the weather and the house's load at an
instant do not depend on the step size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from simulation.plant.battery import BatteryMemory, BatteryPack
from simulation.plant.dispatch import PowerFlow, dispatch
from simulation.plant.equipment import SiteSpec
from simulation.plant.grid import GridModel
from simulation.plant.load import DAY_S, HouseModel, scripted_runs
from simulation.plant.pv import maximum_power_point, operating_point
from simulation.plant.scenarios import Scenario, scenario_spec
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
    SunState,
)
from simulation.plant.sun import clear_sky, sun_position
from simulation.plant.weather import WeatherModel

# Berlin: a mid-latitude site whose seasons make every scenario plausible.
DEFAULT_LATITUDE_DEG: Final = 52.52
DEFAULT_LONGITUDE_DEG: Final = 13.40
# Above this SOC a charging pack is topped off at constant voltage: "float" on EPEver.
FLOAT_SOC: Final = 0.99


@dataclass(frozen=True, slots=True)
class _Memory:
    """What carries over from one step to the next."""

    time: datetime
    battery: BatteryMemory
    charger_temperature_c: float
    inverter_temperature_c: float
    pv_today_wh: float
    pv_today_day: int
    energy: EnergyCounters


class Plant:
    """A simulated site: ``Plant("sunny", seed=1, start=datetime.now(UTC))``.

    ``start`` must be timezone-aware. ``utc_offset_h`` is the household's clock
    (load profile, "energy today"); by default the longitude's nearest whole hour.
    ``initial_soc_pct`` overrides the scenario's starting SOC. ``with_opening``
    switches on the appliances the scenario runs in its first minutes from its
    default start (``ScenarioSpec.opening``; ``ems sim`` and ``ems demo``).
    """

    def __init__(
        self,
        scenario: Scenario | str,
        seed: int,
        start: datetime,
        *,
        latitude_deg: float = DEFAULT_LATITUDE_DEG,
        longitude_deg: float = DEFAULT_LONGITUDE_DEG,
        utc_offset_h: float | None = None,
        site: SiteSpec | None = None,
        initial_soc_pct: float | None = None,
        with_opening: bool = False,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be a timezone-aware datetime")
        if not -90.0 <= latitude_deg <= 90.0:
            raise ValueError(f"latitude_deg must be within -90..90, got {latitude_deg!r}")
        if not -180.0 <= longitude_deg <= 180.0:
            raise ValueError(f"longitude_deg must be within -180..180, got {longitude_deg!r}")
        self.scenario, self._scenario_spec = scenario_spec(scenario)
        self.seed = seed
        self.site = site if site is not None else SiteSpec()
        self.latitude_deg = latitude_deg
        self.longitude_deg = longitude_deg
        self.utc_offset_h = (
            float(round(longitude_deg / 15.0)) if utc_offset_h is None else utc_offset_h
        )
        self._weather = WeatherModel(self._scenario_spec, seed, latitude_deg)
        self._battery = BatteryPack(self.site.battery, seed)
        self._house = HouseModel(
            self.site.house,
            seed,
            scripted=scripted_runs(
                self.site.house,
                self._scenario_spec.opening if with_opening else (),
                start.timestamp() + self.utc_offset_h * 3600.0,
            ),
        )
        self._grid = GridModel(self.site.grid, seed)

        start = start.astimezone(UTC)
        room_c = self.site.room_temperature_c(
            self._weather.at(start, longitude_deg).outdoor_temperature_c
        )
        soc_pct = (
            initial_soc_pct if initial_soc_pct is not None else self._scenario_spec.initial_soc_pct
        )
        self._memory = _Memory(
            time=start,
            battery=self._battery.initial_memory(soc_pct, room_c),
            charger_temperature_c=room_c,
            inverter_temperature_c=room_c,
            pv_today_wh=0.0,
            pv_today_day=self._local_day(start),
            energy=EnergyCounters(),
        )
        self._memory, self._state = self._advance(self._memory, 0.0)

    @property
    def state(self) -> PlantState:
        """The latest state (the start state before the first step)."""
        return self._state

    @property
    def time(self) -> datetime:
        return self._state.time

    def step(self, dt_s: float) -> PlantState:
        """Advance simulated time by ``dt_s`` seconds (> 0) and return the new state."""
        if not (math.isfinite(dt_s) and dt_s > 0.0):
            raise ValueError(f"dt_s must be a finite number of seconds > 0, got {dt_s!r}")
        self._memory, self._state = self._advance(self._memory, dt_s)
        return self._state

    def _local_day(self, when: datetime) -> int:
        return math.floor((when.timestamp() + self.utc_offset_h * 3600.0) / DAY_S)

    def _advance(self, memory: _Memory, dt_s: float) -> tuple[_Memory, PlantState]:
        site = self.site
        now = memory.time + timedelta(seconds=dt_s)
        hours = dt_s / 3600.0

        sun = sun_position(now, self.latitude_deg, self.longitude_deg)
        sky = clear_sky(
            sun, now, tilt_deg=site.array.tilt_deg, array_azimuth_deg=site.array.azimuth_deg
        )
        weather = self._weather.at(now, self.longitude_deg)
        room_c = site.room_temperature_c(weather.outdoor_temperature_c)
        poa = sky.plane_of_array_w_m2 * weather.clear_sky_index
        mpp = maximum_power_point(site.array, poa, weather.outdoor_temperature_c)
        house = self._house.at(now, self.utc_offset_h)

        pack = self._battery
        limits = pack.limits(memory.battery, dt_s)
        # The charger's current rating at the lowest bus voltage of the step (the pack at
        # its discharge limit), so the rated current holds whatever the inverter draws.
        low_bus_v = pack.open_circuit_voltage(memory.battery.soc) - (
            limits.discharge_current_a * pack.resistance_ohm
        )
        flow = dispatch(
            pv_available_w=mpp.power_w,
            load_w=house.power_w,
            charger=site.charger.losses,
            charger_max_out_w=site.charger.rated_charge_current_a * low_bus_v,
            inverter=site.inverter.losses,
            inverter_rated_w=site.inverter.rated_power_w,
            battery_charge_limit_w=min(limits.charge_w, site.max_battery_charge_w),
            battery_discharge_limit_w=min(limits.discharge_w, site.max_battery_discharge_w),
        )
        battery_memory, battery = pack.step(memory.battery, flow.battery_w, dt_s, room_c)
        bus_v = battery.voltage_v

        # The inverter feeds L1 at unity power factor; L2 and L3 draw on the grid alone.
        meter = self._grid.measure(
            now,
            (
                house.phase_power_w[0] - flow.inverter_ac_w,
                house.phase_power_w[1],
                house.phase_power_w[2],
            ),
            house.phase_reactive_var,
        )

        day = self._local_day(now)
        pv_today = memory.pv_today_wh if day == memory.pv_today_day else 0.0
        energy = _integrate(memory.energy, flow, hours)
        pv_point = operating_point(mpp, min(flow.pv_w, mpp.power_w))
        charger_c = _relax(
            memory.charger_temperature_c,
            room_c + flow.charger_loss_w * site.charger.thermal_resistance_k_per_w,
            dt_s,
            site.charger.thermal_time_constant_s,
        )
        inverter_c = _relax(
            memory.inverter_temperature_c,
            room_c + flow.inverter_loss_w * site.inverter.thermal_resistance_k_per_w,
            dt_s,
            site.inverter.thermal_time_constant_s,
        )
        new_memory = _Memory(
            time=now,
            battery=battery_memory,
            charger_temperature_c=charger_c,
            inverter_temperature_c=inverter_c,
            pv_today_wh=pv_today + flow.pv_w * hours,
            pv_today_day=day,
            energy=energy,
        )
        state = PlantState(
            time=now,
            dt_s=dt_s,
            scenario=self.scenario,
            sun=SunState(
                elevation_deg=sun.elevation_deg,
                azimuth_deg=sun.azimuth_deg,
                cloud_cover=weather.cloud_cover,
                clear_sky_poa_w_m2=sky.plane_of_array_w_m2,
                poa_w_m2=poa,
                outdoor_temperature_c=weather.outdoor_temperature_c,
            ),
            pv=PvState(
                available_power_w=mpp.power_w,
                power_w=flow.pv_w,
                voltage_v=pv_point.voltage_v,
                current_a=pv_point.current_a,
                cell_temperature_c=mpp.cell_temperature_c,
                energy_today_wh=new_memory.pv_today_wh,
                energy_total_wh=energy.pv_wh,
            ),
            charger=ChargerState(
                input_power_w=flow.pv_w,
                output_power_w=flow.charger_out_w,
                loss_w=flow.charger_loss_w,
                battery_voltage_v=bus_v,
                battery_current_a=flow.charger_out_w / bus_v,
                temperature_c=charger_c,
                status=_charge_status(flow, battery_memory),
            ),
            battery=battery,
            inverter=InverterState(
                ac_power_w=flow.inverter_ac_w,
                dc_power_w=flow.inverter_dc_w,
                loss_w=flow.inverter_loss_w,
                ac_voltage_v=meter.phase_voltage_v[0],
                ac_current_a=flow.inverter_ac_w / meter.phase_voltage_v[0],
                ac_frequency_hz=meter.frequency_hz,
                dc_voltage_v=bus_v,
                dc_current_a=flow.inverter_dc_w / bus_v,
                temperature_c=inverter_c,
                energy_total_wh=energy.inverter_ac_wh,
                rated_power_w=site.inverter.rated_power_w,
                status=_inverter_status(flow, limits.discharge_w),
            ),
            house=HouseState(load=house, energy_wh=energy.house_wh),
            grid=GridState(
                meter=meter,
                import_energy_wh=energy.grid_import_wh,
                export_energy_wh=energy.grid_export_wh,
            ),
            flow=flow,
            energy=energy,
        )
        return new_memory, state


def _integrate(energy: EnergyCounters, flow: PowerFlow, hours: float) -> EnergyCounters:
    return replace(
        energy,
        pv_wh=energy.pv_wh + flow.pv_w * hours,
        charger_loss_wh=energy.charger_loss_wh + flow.charger_loss_w * hours,
        charger_out_wh=energy.charger_out_wh + flow.charger_out_w * hours,
        inverter_dc_wh=energy.inverter_dc_wh + flow.inverter_dc_w * hours,
        inverter_ac_wh=energy.inverter_ac_wh + flow.inverter_ac_w * hours,
        inverter_loss_wh=energy.inverter_loss_wh + flow.inverter_loss_w * hours,
        battery_discharged_wh=energy.battery_discharged_wh + max(0.0, flow.battery_w) * hours,
        battery_charged_wh=energy.battery_charged_wh + max(0.0, -flow.battery_w) * hours,
        grid_import_wh=energy.grid_import_wh + max(0.0, flow.grid_w) * hours,
        grid_export_wh=energy.grid_export_wh + max(0.0, -flow.grid_w) * hours,
        house_wh=energy.house_wh + flow.load_w * hours,
        curtailed_wh=energy.curtailed_wh + max(0.0, flow.curtailed_w) * hours,
    )


def _relax(value: float, target: float, dt_s: float, tau_s: float) -> float:
    """First-order lag solved exactly over ``dt_s``: stable for any step."""
    return target + (value - target) * math.exp(-dt_s / tau_s)


def _charge_status(flow: PowerFlow, battery: BatteryMemory) -> ChargeStatus:
    if flow.charger_out_w <= 0.0:
        return ChargeStatus.NO_CHARGING
    if battery.soc >= FLOAT_SOC:
        return ChargeStatus.FLOAT
    return ChargeStatus.BOOST


def _inverter_status(flow: PowerFlow, discharge_limit_w: float) -> InverterStatus:
    if flow.inverter_ac_w <= 0.0:
        has_dc = flow.charger_out_w > 0.0 or discharge_limit_w > 0.0
        return InverterStatus.STANDBY if has_dc else InverterStatus.SLEEPING
    return InverterStatus.THROTTLED if flow.inverter_limited else InverterStatus.MPPT
