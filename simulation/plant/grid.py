"""The grid at the connection point: the slack that takes or gives whatever the house needs.

Three phases of 230 V nominal (EN 50160 allows ±10 %; a healthy LV feeder stays within
a few percent): each phase voltage wanders with seeded noise and rises with export /
falls with import through the feeder impedance (``ΔV = -Z · P / V``). Frequency is
50 Hz with slow and fast seeded noise of a few tens of mHz, as on the continental
European grid in normal operation (ENTSO-E: within ±50 mHz most of the time).
Power factor is the displacement power factor ``|P| / S`` of the total, reported
as a magnitude (0..1); the reactive power's sign (> 0 inductive, drawn from the
grid) is in ``reactive_var``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from simulation.plant.noise import ValueNoise


@dataclass(frozen=True, slots=True)
class GridSpec:
    nominal_voltage_v: float = 230.0
    voltage_noise: float = 0.008
    feeder_impedance_ohm: float = 0.25
    nominal_frequency_hz: float = 50.0
    frequency_slow_noise_hz: float = 0.02
    frequency_fast_noise_hz: float = 0.005
    frequency_band_hz: float = 0.2


@dataclass(frozen=True, slots=True)
class GridMeasurement:
    """The meter's instantaneous values (its energy counters live in the plant)."""

    phase_power_w: tuple[float, float, float]
    phase_reactive_var: tuple[float, float, float]
    phase_voltage_v: tuple[float, float, float]
    phase_current_a: tuple[float, float, float]
    frequency_hz: float

    @property
    def power_w(self) -> float:
        return sum(self.phase_power_w)

    @property
    def reactive_var(self) -> float:
        return sum(self.phase_reactive_var)

    @property
    def apparent_va(self) -> float:
        return math.hypot(self.power_w, self.reactive_var)

    @property
    def power_factor(self) -> float:
        apparent = self.apparent_va
        return abs(self.power_w) / apparent if apparent > 0.0 else 1.0

    @property
    def voltage_v(self) -> float:
        """Average line-to-neutral voltage (SDM630 input register 30043)."""
        return sum(self.phase_voltage_v) / 3.0

    @property
    def current_a(self) -> float:
        """Sum of line currents (SDM630 input register 30049)."""
        return sum(self.phase_current_a)


class GridModel:
    def __init__(self, spec: GridSpec, seed: int) -> None:
        self.spec = spec
        self._voltage = tuple(ValueNoise(seed, f"grid.voltage.l{n}", 300.0) for n in (1, 2, 3))
        self._frequency_slow = ValueNoise(seed, "grid.frequency.slow", 60.0)
        self._frequency_fast = ValueNoise(seed, "grid.frequency.fast", 5.0)

    def measure(
        self,
        when: datetime,
        phase_power_w: tuple[float, float, float],
        phase_reactive_var: tuple[float, float, float],
    ) -> GridMeasurement:
        """The meter's reading when the site draws these per-phase powers (> 0 import)."""
        spec = self.spec
        t_s = when.timestamp()
        vn = spec.nominal_voltage_v
        voltages = tuple(
            vn * (1.0 + spec.voltage_noise * max(-3.0, min(3.0, noise.at(t_s))))
            - spec.feeder_impedance_ohm * p / vn
            for noise, p in zip(self._voltage, phase_power_w, strict=True)
        )
        currents = tuple(
            math.hypot(p, q) / v
            for p, q, v in zip(phase_power_w, phase_reactive_var, voltages, strict=True)
        )
        deviation = spec.frequency_slow_noise_hz * self._frequency_slow.at(
            t_s
        ) + spec.frequency_fast_noise_hz * self._frequency_fast.at(t_s)
        band = spec.frequency_band_hz
        return GridMeasurement(
            phase_power_w=phase_power_w,
            phase_reactive_var=phase_reactive_var,
            phase_voltage_v=(voltages[0], voltages[1], voltages[2]),
            phase_current_a=(currents[0], currents[1], currents[2]),
            frequency_hz=spec.nominal_frequency_hz + max(-band, min(band, deviation)),
        )
