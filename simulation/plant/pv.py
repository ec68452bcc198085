"""The PV array: irradiance and temperature in, maximum-power point and operating point out.

Module power scales with plane-of-array irradiance and derates with cell
temperature, ``P = P_stc * G / 1000 * (1 + gamma * (T_cell - 25))`` (the datasheet
model, IEC 61215 STC at 1000 W/m² and 25 °C). Cell temperature from the NOCT model,
``T_cell = T_air + (NOCT - 20) / 800 * G``. Open-circuit voltage falls with
temperature (``beta_voc``) and logarithmically with irradiance (diode equation,
``n * Ns * kT/q * ln(G / 1000)``). When the charge controller curtails (battery full,
inverter at its limit), it moves the array off its maximum-power point towards
open circuit: the voltage rises and the current falls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

BOLTZMANN_OVER_CHARGE_V_K: Final = 8.617333262e-5
STC_IRRADIANCE_W_M2: Final = 1000.0
STC_CELL_TEMPERATURE_C: Final = 25.0


@dataclass(frozen=True, slots=True)
class PvArraySpec:
    """An array of identical modules; defaults: 3 strings of 3 × 400 W mono modules."""

    modules_in_series: int = 3
    strings: int = 3
    module_power_stc_w: float = 400.0
    module_vmp_stc_v: float = 34.0
    module_voc_stc_v: float = 41.2
    cells_in_series: int = 60
    diode_ideality: float = 1.2
    # Datasheet temperature coefficients, per kelvin (fractions).
    gamma_pmp_per_k: float = -0.0035
    beta_voc_per_k: float = -0.0027
    noct_c: float = 45.0
    tilt_deg: float = 35.0
    azimuth_deg: float = 180.0

    @property
    def peak_power_w(self) -> float:
        return self.modules_in_series * self.strings * self.module_power_stc_w


@dataclass(frozen=True, slots=True)
class MaximumPowerPoint:
    """What the array could deliver now, at its maximum-power point."""

    irradiance_w_m2: float
    cell_temperature_c: float
    power_w: float
    vmp_v: float
    voc_v: float


@dataclass(frozen=True, slots=True)
class PvOperatingPoint:
    power_w: float
    voltage_v: float
    current_a: float


def maximum_power_point(
    spec: PvArraySpec, irradiance_w_m2: float, air_temperature_c: float
) -> MaximumPowerPoint:
    """The array's maximum-power point for a plane-of-array irradiance and air temperature."""
    g = max(0.0, irradiance_w_m2)
    cell_c = air_temperature_c + (spec.noct_c - 20.0) / 800.0 * g
    if g <= 0.0:
        return MaximumPowerPoint(0.0, cell_c, 0.0, 0.0, 0.0)
    delta_t = cell_c - STC_CELL_TEMPERATURE_C
    modules = spec.modules_in_series * spec.strings
    power = max(
        0.0,
        modules
        * spec.module_power_stc_w
        * g
        / STC_IRRADIANCE_W_M2
        * (1 + spec.gamma_pmp_per_k * delta_t),
    )
    thermal_v = BOLTZMANN_OVER_CHARGE_V_K * (cell_c + 273.15)
    module_voc = spec.module_voc_stc_v * (
        1 + spec.beta_voc_per_k * delta_t
    ) + spec.diode_ideality * spec.cells_in_series * thermal_v * math.log(g / STC_IRRADIANCE_W_M2)
    voc = max(0.0, spec.modules_in_series * module_voc)
    vmp = voc * spec.module_vmp_stc_v / spec.module_voc_stc_v
    return MaximumPowerPoint(g, cell_c, power, vmp, voc)


def operating_point(mpp: MaximumPowerPoint, power_w: float) -> PvOperatingPoint:
    """The array's voltage and current when the controller draws ``power_w`` <= the MPP power.

    Between the maximum-power point and open circuit the I-V curve is taken as a
    straight line in power: a simplification that keeps the operating point on the
    right side of the knee, which is where a curtailing MPPT controller parks it.
    """
    if power_w > mpp.power_w * (1 + 1e-9) + 1e-9:
        raise ValueError(f"cannot draw {power_w} W from an array offering {mpp.power_w} W")
    if mpp.power_w <= 0.0 or power_w <= 0.0:
        return PvOperatingPoint(0.0, mpp.voc_v, 0.0)
    share = min(1.0, power_w / mpp.power_w)
    voltage = mpp.vmp_v + (mpp.voc_v - mpp.vmp_v) * (1.0 - share)
    return PvOperatingPoint(power_w, voltage, power_w / voltage if voltage > 0 else 0.0)
