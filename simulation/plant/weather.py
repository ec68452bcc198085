"""Cloud cover and outdoor temperature over the site, from the scenario and the seed.

Cloud cover is a seeded value-noise process (``noise.py``) with a slow (45 min)
and a fast (4 min) component, so the same seed gives the same sky whatever the
step size. The clear-sky irradiance is attenuated with Kasten & Czeplak (1980):
``G / G_clear = 1 - 0.75 * N ** 3.4`` for a cloud cover fraction N.

Outdoor temperature: a seasonal mean (mirrored south of the equator), plus the
scenario's offset, plus a daily cosine peaking at 15:00 local solar time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from simulation.plant.noise import ValueNoise
from simulation.plant.scenarios import ScenarioSpec

SLOW_CLOUD_PERIOD_S: Final = 45 * 60.0
FAST_CLOUD_PERIOD_S: Final = 4 * 60.0
# Mid-latitude seasonal swing of the daily mean temperature around 10 °C.
SEASONAL_MEAN_C: Final = 10.0
SEASONAL_AMPLITUDE_C: Final = 8.0
# The warmest day of the year in the north is about day 200 (mid-July).
WARMEST_DAY_OF_YEAR: Final = 200
WARMEST_SOLAR_HOUR: Final = 15.0


@dataclass(frozen=True, slots=True)
class Weather:
    cloud_cover: float
    clear_sky_index: float
    outdoor_temperature_c: float


class WeatherModel:
    """Deterministic weather for one scenario and seed."""

    def __init__(self, spec: ScenarioSpec, seed: int, latitude_deg: float) -> None:
        self._spec = spec
        self._latitude_deg = latitude_deg
        self._slow = ValueNoise(seed, "clouds.slow", SLOW_CLOUD_PERIOD_S)
        self._fast = ValueNoise(seed, "clouds.fast", FAST_CLOUD_PERIOD_S)

    def at(self, when: datetime, longitude_deg: float) -> Weather:
        t_s = when.timestamp()
        spec = self._spec
        cover = (
            spec.cloud_mean
            + spec.cloud_slow_amplitude * self._slow.at(t_s)
            + spec.cloud_fast_amplitude * self._fast.at(t_s)
        )
        cover = min(1.0, max(0.0, cover))
        return Weather(
            cloud_cover=cover,
            clear_sky_index=(
                clear_sky_index(cover) * spec.overcast_transmittance if spec.daylight else 0.0
            ),
            outdoor_temperature_c=self._temperature(when, longitude_deg),
        )

    def _temperature(self, when: datetime, longitude_deg: float) -> float:
        utc = when.astimezone(UTC)
        day = utc.timetuple().tm_yday
        season = math.cos(2 * math.pi * (day - WARMEST_DAY_OF_YEAR) / 365.0)
        if self._latitude_deg < 0:
            season = -season
        solar_hour = (utc.hour + utc.minute / 60 + utc.second / 3600 + longitude_deg / 15) % 24
        daily = math.cos(2 * math.pi * (solar_hour - WARMEST_SOLAR_HOUR) / 24.0)
        return (
            SEASONAL_MEAN_C
            + SEASONAL_AMPLITUDE_C * season
            + self._spec.temperature_offset_c
            + self._spec.daily_temperature_swing_c / 2 * daily
        )


def clear_sky_index(cloud_cover: float) -> float:
    """Fraction of clear-sky irradiance under ``cloud_cover`` (Kasten & Czeplak 1980)."""
    cover = min(1.0, max(0.0, cloud_cover))
    return 1.0 - 0.75 * math.pow(cover, 3.4)
