"""The battery pack and its BMS: LiFePO4 cells in series, SOC from integrated current.

Defaults after a 16S 280 Ah LiFePO4 pack with a Seplos V3 BMS (51.2 V nominal,
14.3 kWh). Each cell has an open-circuit voltage from a LiFePO4 OCV curve
(``OCV_CURVE``: typical values for prismatic LFP cells at 25 °C, flat between 20 and
90 % SOC and steep at both ends) and a series resistance; the pack is their sum, so
the pack voltage is exactly the sum of the cell voltages. Cells differ by a seeded
SOC offset and resistance spread: that is the BMS's min/max cell spread, which grows
at both ends of the curve as it does on a real pack.

Current from power: the terminal power is ``P = (OCV - I R) I`` (``I`` > 0
discharging), solved for ``I``. SOC integrates that current; charging stores only
``coulombic_efficiency`` of the charge (about 99 % for LFP). The BMS limits charge
current (tapering to a tail current in the last ``charge_taper_pct`` before full, as
a CC-CV charge does) and discharge current (tapering just above the reserve), and the
pack never takes more charge in a step than fits below ``soc_max_pct`` nor gives more
than it holds above ``soc_min_pct``, however long the step. Cycles count throughput:
one cycle per rated capacity discharged. State of health fades linearly with cycles
(about 20 % over 6,000 cycles, a common LFP datasheet rating). Temperature follows a
first-order thermal model heated by ``I² R``, solved exactly so any step is stable.
"""

from __future__ import annotations

import bisect
import enum
import math
from dataclasses import dataclass
from typing import Final

from simulation.plant.noise import generator

# (SOC fraction, cell OCV in volts) for LiFePO4 at 25 °C.
OCV_CURVE: Final[tuple[tuple[float, float], ...]] = (
    (0.00, 2.50),
    (0.05, 3.00),
    (0.10, 3.20),
    (0.20, 3.25),
    (0.30, 3.28),
    (0.40, 3.29),
    (0.50, 3.30),
    (0.60, 3.31),
    (0.70, 3.33),
    (0.80, 3.34),
    (0.90, 3.35),
    (0.95, 3.38),
    (1.00, 3.45),
)
_OCV_SOC: Final = tuple(point[0] for point in OCV_CURVE)
# Below this power the pack is reported idle (a BMS's current zero band).
IDLE_POWER_W: Final = 1.0


def cell_ocv(soc: float) -> float:
    """Open-circuit voltage of one cell at ``soc`` (0..1, clipped), interpolated linearly."""
    soc = min(1.0, max(0.0, soc))
    index = bisect.bisect_right(_OCV_SOC, soc)
    if index >= len(OCV_CURVE):
        return OCV_CURVE[-1][1]
    (s0, v0), (s1, v1) = OCV_CURVE[index - 1], OCV_CURVE[index]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


class BatteryStatus(enum.StrEnum):
    CHARGING = "charging"
    DISCHARGING = "discharging"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class BatterySpec:
    cells_in_series: int = 16
    rated_capacity_ah: float = 280.0
    cell_resistance_ohm: float = 0.0005
    max_charge_current_a: float = 140.0
    max_discharge_current_a: float = 150.0
    soc_max_pct: float = 100.0
    # The inverter's discharge reserve: below it the pack is "empty" for the site.
    soc_min_pct: float = 10.0
    charge_taper_pct: float = 5.0
    tail_current_fraction: float = 0.05
    discharge_taper_pct: float = 3.0
    coulombic_efficiency: float = 0.99
    initial_soh_pct: float = 98.0
    soh_fade_pct_per_cycle: float = 20.0 / 6000.0
    initial_cycle_count: float = 0.0
    cell_soc_spread: float = 0.015
    cell_resistance_spread: float = 0.1
    temperature_sensors: int = 4
    sensor_spread_c: float = 0.6
    thermal_resistance_k_per_w: float = 0.08
    thermal_time_constant_s: float = 3 * 3600.0


@dataclass(frozen=True, slots=True)
class BatteryMemory:
    """What the pack remembers between steps."""

    soc: float
    soh: float
    cycle_count: float
    temperature_c: float
    charged_wh: float = 0.0
    discharged_wh: float = 0.0
    charged_ah: float = 0.0
    discharged_ah: float = 0.0


@dataclass(frozen=True, slots=True)
class PowerLimits:
    """What the pack accepts over the coming step, at its terminals (both >= 0)."""

    charge_w: float
    discharge_w: float
    charge_current_a: float
    discharge_current_a: float


@dataclass(frozen=True, slots=True)
class BatteryState:
    """The pack as its BMS reports it.

    ``power_w``, ``current_a``, ``voltage_v`` and the cell voltages are the operating
    point over the step that ended at this state; SOC, SOH, cycles and counters are
    their values at its end.
    """

    soc_pct: float
    soh_pct: float
    power_w: float
    voltage_v: float
    current_a: float
    temperature_c: float
    cell_voltages_v: tuple[float, ...]
    cell_temperatures_c: tuple[float, ...]
    cycle_count: float
    rated_capacity_ah: float
    full_capacity_ah: float
    remaining_ah: float
    max_charge_current_a: float
    max_discharge_current_a: float
    charged_wh: float
    discharged_wh: float
    status: BatteryStatus

    @property
    def cell_voltage_min_v(self) -> float:
        return min(self.cell_voltages_v)

    @property
    def cell_voltage_max_v(self) -> float:
        return max(self.cell_voltages_v)


class BatteryPack:
    """The pack's physics for one spec and seed; holds no changing state but a memo."""

    def __init__(self, spec: BatterySpec, seed: int) -> None:
        self.spec = spec
        rng = generator(seed, "battery.cells", 0)
        self._soc_offsets = tuple(
            rng.uniform(-spec.cell_soc_spread, spec.cell_soc_spread)
            for _ in range(spec.cells_in_series)
        )
        self._resistances = tuple(
            spec.cell_resistance_ohm
            * (1 + rng.uniform(-spec.cell_resistance_spread, spec.cell_resistance_spread))
            for _ in range(spec.cells_in_series)
        )
        self._sensor_offsets = tuple(
            rng.uniform(-spec.sensor_spread_c, spec.sensor_spread_c)
            for _ in range(spec.temperature_sensors)
        )
        self.resistance_ohm = sum(self._resistances)
        # (soc, pack OCV) of the last lookup: a step asks for the same SOC several times.
        self._last_ocv = (math.nan, math.nan)

    def initial_memory(self, soc_pct: float | None, room_c: float) -> BatteryMemory:
        spec = self.spec
        soc = spec.soc_min_pct if soc_pct is None else soc_pct
        if not 0.0 <= soc <= 100.0:
            raise ValueError(f"initial SOC must be within 0..100 %, got {soc!r}")
        return BatteryMemory(
            soc=soc / 100.0,
            soh=spec.initial_soh_pct / 100.0,
            cycle_count=spec.initial_cycle_count,
            temperature_c=room_c,
        )

    def open_circuit_voltage(self, soc: float) -> float:
        last_soc, last_ocv = self._last_ocv
        if soc != last_soc:
            last_ocv = sum(cell_ocv(soc + offset) for offset in self._soc_offsets)
            self._last_ocv = (soc, last_ocv)
        return last_ocv

    def cell_voltages(self, soc: float, current_a: float) -> tuple[float, ...]:
        return tuple(
            cell_ocv(soc + offset) - current_a * resistance
            for offset, resistance in zip(self._soc_offsets, self._resistances, strict=True)
        )

    def full_capacity_ah(self, memory: BatteryMemory) -> float:
        return self.spec.rated_capacity_ah * memory.soh

    def current_for_power(self, soc: float, power_w: float) -> float:
        """Terminal current (> 0 discharging) that delivers ``power_w`` at the terminals."""
        ocv = self.open_circuit_voltage(soc)
        r = self.resistance_ohm
        discriminant = ocv * ocv - 4.0 * r * power_w
        if discriminant < 0.0:
            raise ValueError(f"{power_w} W exceeds what the pack can deliver ({ocv**2 / 4 / r} W)")
        # Root of R I² - OCV I + P = 0 nearest zero, written without cancellation.
        return 2.0 * power_w / (ocv + math.sqrt(discriminant))

    def power_for_current(self, soc: float, current_a: float) -> float:
        return (self.open_circuit_voltage(soc) - current_a * self.resistance_ohm) * current_a

    def bms_current_limits(self, memory: BatteryMemory) -> tuple[float, float]:
        """(charge, discharge) current the BMS allows at this SOC and temperature, in A."""
        spec = self.spec
        soc_pct = memory.soc * 100.0
        if soc_pct >= spec.soc_max_pct or memory.temperature_c <= 0.0:
            # LFP must not be charged below 0 °C (lithium plating): every LFP datasheet.
            charge = 0.0
        else:
            taper = (spec.soc_max_pct - soc_pct) / spec.charge_taper_pct
            charge = spec.max_charge_current_a * min(1.0, max(spec.tail_current_fraction, taper))
        if soc_pct <= spec.soc_min_pct:
            discharge = 0.0
        else:
            taper = (soc_pct - spec.soc_min_pct) / spec.discharge_taper_pct
            discharge = spec.max_discharge_current_a * min(
                1.0, max(spec.tail_current_fraction, taper)
            )
        return charge, discharge

    def limits(self, memory: BatteryMemory, dt_s: float) -> PowerLimits:
        """Terminal power the pack accepts over a step of ``dt_s`` seconds (0: no headroom cap)."""
        spec = self.spec
        charge_a, discharge_a = self.bms_current_limits(memory)
        if dt_s > 0.0:
            capacity_as = self.full_capacity_ah(memory) * 3600.0
            room = max(0.0, spec.soc_max_pct / 100.0 - memory.soc) * capacity_as
            held = max(0.0, memory.soc - spec.soc_min_pct / 100.0) * capacity_as
            charge_a = min(charge_a, room / (dt_s * spec.coulombic_efficiency))
            discharge_a = min(discharge_a, held / dt_s)
        return PowerLimits(
            charge_w=-self.power_for_current(memory.soc, -charge_a),
            discharge_w=self.power_for_current(memory.soc, discharge_a),
            charge_current_a=charge_a,
            discharge_current_a=discharge_a,
        )

    def step(
        self, memory: BatteryMemory, power_w: float, dt_s: float, room_c: float
    ) -> tuple[BatteryMemory, BatteryState]:
        """Hold ``power_w`` (> 0 discharging) for ``dt_s`` seconds: the new memory and state."""
        spec = self.spec
        current = self.current_for_power(memory.soc, power_w)
        hours = dt_s / 3600.0
        moved_ah = current * hours
        capacity_ah = self.full_capacity_ah(memory)
        if current >= 0.0:
            soc = memory.soc - moved_ah / capacity_ah
        else:
            soc = memory.soc - moved_ah * spec.coulombic_efficiency / capacity_ah
        soc = min(1.0, max(0.0, soc))
        discharged_ah = max(0.0, moved_ah)
        cycles = discharged_ah / spec.rated_capacity_ah
        heat_w = current * current * self.resistance_ohm
        equilibrium_c = room_c + heat_w * spec.thermal_resistance_k_per_w
        decay = math.exp(-dt_s / spec.thermal_time_constant_s)
        new = BatteryMemory(
            soc=soc,
            soh=max(0.0, memory.soh - spec.soh_fade_pct_per_cycle / 100.0 * cycles),
            cycle_count=memory.cycle_count + cycles,
            temperature_c=equilibrium_c + (memory.temperature_c - equilibrium_c) * decay,
            charged_wh=memory.charged_wh + max(0.0, -power_w) * hours,
            discharged_wh=memory.discharged_wh + max(0.0, power_w) * hours,
            charged_ah=memory.charged_ah + max(0.0, -moved_ah),
            discharged_ah=memory.discharged_ah + discharged_ah,
        )
        return new, self._observe(memory, new, power_w, current)

    def _observe(
        self, before: BatteryMemory, after: BatteryMemory, power_w: float, current_a: float
    ) -> BatteryState:
        cells = self.cell_voltages(before.soc, current_a)
        charge_a, discharge_a = self.bms_current_limits(after)
        if power_w <= -IDLE_POWER_W:
            status = BatteryStatus.CHARGING
        elif power_w >= IDLE_POWER_W:
            status = BatteryStatus.DISCHARGING
        else:
            status = BatteryStatus.IDLE
        full_ah = self.full_capacity_ah(after)
        return BatteryState(
            soc_pct=after.soc * 100.0,
            soh_pct=after.soh * 100.0,
            power_w=power_w,
            voltage_v=sum(cells),
            current_a=current_a,
            temperature_c=after.temperature_c,
            cell_voltages_v=cells,
            cell_temperatures_c=tuple(after.temperature_c + off for off in self._sensor_offsets),
            cycle_count=after.cycle_count,
            rated_capacity_ah=self.spec.rated_capacity_ah,
            full_capacity_ah=full_ah,
            remaining_ah=full_ah * after.soc,
            max_charge_current_a=charge_a,
            max_discharge_current_a=discharge_a,
            charged_wh=after.charged_wh,
            discharged_wh=after.discharged_wh,
            status=status,
        )
