"""Solar geometry against almanac values, and clear-sky irradiance's shape."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from simulation.plant.sun import air_mass, clear_sky, sun_position

BERLIN = (52.52, 13.40)
SYDNEY = (-33.87, 151.21)


def _day_maximum(day: datetime, latitude: float, longitude: float) -> tuple[datetime, float]:
    """(time, elevation) of the highest sun of a UTC day, scanning every minute."""
    best = (day, -90.0)
    for minute in range(24 * 60):
        when = day + timedelta(minutes=minute)
        elevation = sun_position(when, latitude, longitude).elevation_deg
        if elevation > best[1]:
            best = (when, elevation)
    return best


@pytest.mark.parametrize(
    ("day", "site", "declination_deg"),
    [
        # Declinations from the Astronomical Almanac: solstices ±23.44°, equinox ~0°.
        (datetime(2026, 6, 21, tzinfo=UTC), BERLIN, 23.44),
        (datetime(2026, 12, 21, tzinfo=UTC), BERLIN, -23.44),
        (datetime(2026, 3, 20, tzinfo=UTC), BERLIN, -0.1),
        (datetime(2026, 12, 21, tzinfo=UTC) - timedelta(hours=12), SYDNEY, -23.44),
    ],
)
def test_solar_noon_elevation_matches_the_declination(
    day: datetime, site: tuple[float, float], declination_deg: float
) -> None:
    latitude, longitude = site
    _, elevation = _day_maximum(day, latitude, longitude)
    assert elevation == pytest.approx(90.0 - abs(latitude - declination_deg), abs=1.0)


def test_solar_noon_time_follows_the_equation_of_time() -> None:
    # Around 3 November the equation of time peaks at +16.4 min (the sun is early):
    # solar noon at Greenwich is at about 11:43:36 UTC; 15° east, one hour earlier.
    day = datetime(2026, 11, 3, tzinfo=UTC)
    noon, _ = _day_maximum(day, 51.48, 0.0)
    expected = day + timedelta(hours=11, minutes=43, seconds=36)
    assert abs((noon - expected).total_seconds()) <= 90
    noon_east, _ = _day_maximum(day, 51.48, 15.0)
    assert abs((noon - noon_east).total_seconds() - 3600) <= 90


def test_azimuth_points_south_at_noon_in_the_north_and_north_in_the_south() -> None:
    noon_berlin, _ = _day_maximum(datetime(2026, 6, 21, tzinfo=UTC), *BERLIN)
    assert sun_position(noon_berlin, *BERLIN).azimuth_deg == pytest.approx(180.0, abs=2.0)
    noon_sydney, _ = _day_maximum(datetime(2026, 6, 20, 12, tzinfo=UTC), *SYDNEY)
    azimuth = sun_position(noon_sydney, *SYDNEY).azimuth_deg
    assert min(azimuth, 360.0 - azimuth) == pytest.approx(0.0, abs=2.0)


def test_midsummer_sunrise_in_berlin_is_in_the_north_east() -> None:
    # Almanac: sunrise on 21 June in Berlin at about 02:43 UTC, azimuth about 47°.
    day = datetime(2026, 6, 21, tzinfo=UTC)
    when = day
    while sun_position(when, *BERLIN).elevation_deg < -0.833:  # refraction + disc
        when += timedelta(minutes=1)
    assert abs((when - (day + timedelta(hours=2, minutes=43))).total_seconds()) <= 5 * 60
    assert sun_position(when, *BERLIN).azimuth_deg == pytest.approx(47.0, abs=3.0)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sun_position(datetime(2026, 6, 21, 12), *BERLIN)


def test_air_mass_is_one_overhead_two_at_thirty_degrees_and_infinite_below() -> None:
    assert air_mass(90.0) == pytest.approx(1.0, abs=1e-3)
    assert air_mass(30.0) == pytest.approx(1.0 / math.sin(math.radians(30.0)), rel=0.01)
    assert air_mass(0.0) == math.inf
    assert air_mass(-5.0) == math.inf


def test_clear_sky_is_dark_below_the_horizon_and_brighter_as_the_sun_rises() -> None:
    day = datetime(2026, 6, 21, tzinfo=UTC)
    samples = []
    for minute in range(0, 24 * 60, 10):
        when = day + timedelta(minutes=minute)
        sun = sun_position(when, *BERLIN)
        sky = clear_sky(sun, when, tilt_deg=0.0, array_azimuth_deg=180.0)
        if sun.elevation_deg <= 0:
            assert sky.global_horizontal_w_m2 == 0.0
        samples.append((sun.elevation_deg, sky.global_horizontal_w_m2))
    daylight = sorted(sample for sample in samples if sample[0] > 0)
    ghi = [value for _, value in daylight]
    assert ghi == sorted(ghi)
    # A clear midsummer noon at 61° gives 850-1000 W/m² on the ground.
    assert 850.0 <= ghi[-1] <= 1000.0


def test_a_tilted_south_array_gets_more_light_than_flat_ground_in_winter() -> None:
    when = datetime(2026, 12, 21, 11, 10, tzinfo=UTC)
    sun = sun_position(when, *BERLIN)
    flat = clear_sky(sun, when, tilt_deg=0.0, array_azimuth_deg=180.0)
    tilted = clear_sky(sun, when, tilt_deg=60.0, array_azimuth_deg=180.0)
    north = clear_sky(sun, when, tilt_deg=60.0, array_azimuth_deg=0.0)
    assert tilted.plane_of_array_w_m2 > 2 * flat.plane_of_array_w_m2
    assert north.plane_of_array_w_m2 < flat.plane_of_array_w_m2
