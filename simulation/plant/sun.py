"""Where the sun is, and how much light a clear sky puts on a tilted PV array.

Solar position follows NOAA's "General Solar Position Calculations" (Spencer's
1971 Fourier series for the declination and the equation of time, then the hour
angle from true solar time); it is good to a fraction of a degree, plenty for a
plant simulator. Irradiance: air mass from Kasten & Young (1989), direct normal
irradiance from Meinel & Meinel (1976) ``1353 * 0.7 ** (AM ** 0.678)`` scaled by
the Earth-Sun distance, diffuse as 10 % of the direct beam (PVEducation,
"Air Mass"), and an isotropic sky for the plane of the array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

# Meinel & Meinel's constant already includes the atmosphere's top-of-air-mass loss.
MEINEL_DNI_W_M2: Final = 1353.0
DIFFUSE_FRACTION: Final = 0.1
GROUND_ALBEDO: Final = 0.2


@dataclass(frozen=True, slots=True)
class SunPosition:
    """The sun seen from the site; azimuth in degrees clockwise from north."""

    elevation_deg: float
    azimuth_deg: float
    declination_deg: float
    equation_of_time_min: float
    hour_angle_deg: float


@dataclass(frozen=True, slots=True)
class Irradiance:
    """Clear-sky light at the site, W/m²."""

    direct_normal_w_m2: float
    diffuse_horizontal_w_m2: float
    global_horizontal_w_m2: float
    plane_of_array_w_m2: float


def _fractional_year(when: datetime) -> float:
    """NOAA's gamma (radians) for a UTC instant."""
    when = when.astimezone(UTC)
    day_of_year = when.timetuple().tm_yday
    days_in_year = 366 if _is_leap(when.year) else 365
    hours = when.hour + when.minute / 60 + (when.second + when.microsecond / 1e6) / 3600
    return 2 * math.pi / days_in_year * (day_of_year - 1 + (hours - 12) / 24)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def sun_position(when: datetime, latitude_deg: float, longitude_deg: float) -> SunPosition:
    """The sun's elevation and azimuth at ``when`` (tz-aware) for a site (east positive)."""
    if when.tzinfo is None:
        raise ValueError("sun_position needs a timezone-aware datetime")
    gamma = _fractional_year(when)
    # NOAA: equation of time in minutes, declination in radians (Spencer 1971).
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    utc = when.astimezone(UTC)
    minutes = utc.hour * 60 + utc.minute + (utc.second + utc.microsecond / 1e6) / 60
    # NOAA: true solar time = UTC minutes + eqtime + 4 min per degree of longitude.
    true_solar_min = minutes + eqtime + 4.0 * longitude_deg
    hour_angle = math.radians(true_solar_min / 4.0 - 180.0)
    lat = math.radians(latitude_deg)
    sin_elevation = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(
        hour_angle
    )
    elevation = math.asin(max(-1.0, min(1.0, sin_elevation)))
    # Meeus, "Astronomical Algorithms" (13.5): azimuth from south, westward; +180° from north.
    azimuth = math.atan2(
        math.sin(hour_angle),
        math.cos(hour_angle) * math.sin(lat) - math.tan(decl) * math.cos(lat),
    )
    return SunPosition(
        elevation_deg=math.degrees(elevation),
        azimuth_deg=(math.degrees(azimuth) + 180.0) % 360.0,
        declination_deg=math.degrees(decl),
        equation_of_time_min=eqtime,
        hour_angle_deg=math.degrees(hour_angle),
    )


def air_mass(elevation_deg: float) -> float:
    """Relative optical air mass (Kasten & Young 1989); infinite below the horizon."""
    if elevation_deg <= 0.0:
        return math.inf
    return 1.0 / (
        math.sin(math.radians(elevation_deg)) + 0.50572 * math.pow(elevation_deg + 6.07995, -1.6364)
    )


def clear_sky(
    sun: SunPosition, when: datetime, *, tilt_deg: float, array_azimuth_deg: float
) -> Irradiance:
    """Clear-sky irradiance, horizontal and on a plane tilted ``tilt_deg`` facing an azimuth."""
    if sun.elevation_deg <= 0.0:
        return Irradiance(0.0, 0.0, 0.0, 0.0)
    day_of_year = when.astimezone(UTC).timetuple().tm_yday
    # Earth-Sun distance correction, +-3.3 % over the year (Duffie & Beckman 1.4.1b).
    eccentricity = 1.0 + 0.033 * math.cos(2 * math.pi * day_of_year / 365.0)
    dni = eccentricity * MEINEL_DNI_W_M2 * 0.7 ** (air_mass(sun.elevation_deg) ** 0.678)
    dhi = DIFFUSE_FRACTION * dni
    sin_el = math.sin(math.radians(sun.elevation_deg))
    ghi = dni * sin_el + dhi
    zenith = math.radians(90.0 - sun.elevation_deg)
    tilt = math.radians(tilt_deg)
    cos_incidence = math.cos(zenith) * math.cos(tilt) + math.sin(zenith) * math.sin(
        tilt
    ) * math.cos(math.radians(sun.azimuth_deg - array_azimuth_deg))
    # Isotropic sky (Liu & Jordan): beam on the plane + sky diffuse + ground reflection.
    poa = (
        dni * max(0.0, cos_incidence)
        + dhi * (1 + math.cos(tilt)) / 2
        + ghi * GROUND_ALBEDO * (1 - math.cos(tilt)) / 2
    )
    return Irradiance(
        direct_normal_w_m2=dni,
        diffuse_horizontal_w_m2=dhi,
        global_horizontal_w_m2=ghi,
        plane_of_array_w_m2=poa,
    )
