"""Named situations the simulated site can be put in (``ems sim --scenario NAME``).

A scenario sets the weather, where the battery starts and, when the caller does
not give a start time (``ems sim``, ``ems demo``), the simulated day and hour it
starts at, with what the household switches on in its first minutes; the physics
are the same in all of them. Names are the enum's values; ``Scenario.parse`` also accepts dashes
(``battery-full``) and any case.

| scenario | sky | battery at start | default start (local) |
| --- | --- | --- | --- |
| sunny | clear, a few thin clouds | 50 % | 15 May 11:00; oven at +60 s, kettle at +120 s |
| cloudy | broken clouds passing, from minutes to an hour | 50 % | 15 May 11:00 |
| night | no daylight at all, whatever the clock says | 60 % | 15 May 21:00 |
| battery_full | clear | 100 %: surplus PV is exported | 15 May 13:00 |
| battery_empty | thick overcast | at the reserve: the deficit is imported | 15 May 18:00 |

The sunny default start is the demo's: with the site's battery setpoints
(``SiteSpec``), the first minute exports what the pack does not take, the oven
(3 kW) makes the pack discharge, and oven plus kettle (5.2 kW with the house)
exceed PV plus the pack's 2 kW, so the grid imports: within ~2 minutes at
``--speed 1`` the grid both imports and exports and the battery both charges and
discharges.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final


class Scenario(enum.StrEnum):
    SUNNY = "sunny"
    CLOUDY = "cloudy"
    NIGHT = "night"
    BATTERY_FULL = "battery_full"
    BATTERY_EMPTY = "battery_empty"

    @classmethod
    def parse(cls, name: str) -> Scenario:
        """The scenario called ``name``; ``ValueError`` naming the known ones otherwise."""
        key = name.strip().lower().replace("-", "_")
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown scenario {name!r}; known: {known}") from None


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """The weather and the battery's starting point of one scenario.

    Cloud cover is ``mean + slow * noise(45 min) + fast * noise(4 min)``, clipped to
    0..1 (see ``weather.py``). ``initial_soc_pct=None`` starts at the battery's
    discharge reserve.
    """

    description: str
    cloud_mean: float
    cloud_slow_amplitude: float
    cloud_fast_amplitude: float
    daylight: bool
    initial_soc_pct: float | None
    # Added to the seasonal outdoor mean; a clear day is warmer than an overcast one.
    temperature_offset_c: float
    daily_temperature_swing_c: float
    # Kasten & Czeplak's attenuation is a climatological mean; a thick, dark stratus
    # deck lets through far less (10-20 % of clear sky): this scales it further.
    overcast_transmittance: float = 1.0
    # The default start: a day of the year and a local hour (see scenario_start).
    start_month_day: tuple[int, int] = (5, 15)
    start_local_hour: float = 11.0
    # (appliance name, seconds after the start): runs switched on at fixed instants,
    # from the default start only (``Plant(with_opening=True)``).
    opening: tuple[tuple[str, float], ...] = ()


SCENARIOS: Final[Mapping[Scenario, ScenarioSpec]] = MappingProxyType(
    {
        Scenario.SUNNY: ScenarioSpec(
            description="clear sky with a few thin clouds; battery half full",
            cloud_mean=0.03,
            cloud_slow_amplitude=0.05,
            cloud_fast_amplitude=0.02,
            daylight=True,
            initial_soc_pct=50.0,
            temperature_offset_c=3.0,
            daily_temperature_swing_c=6.0,
            opening=(("oven", 60.0), ("kettle", 120.0)),
        ),
        Scenario.CLOUDY: ScenarioSpec(
            description="broken clouds passing over the array; battery half full",
            cloud_mean=0.65,
            cloud_slow_amplitude=0.25,
            cloud_fast_amplitude=0.2,
            daylight=True,
            initial_soc_pct=50.0,
            temperature_offset_c=-1.0,
            daily_temperature_swing_c=3.0,
        ),
        Scenario.NIGHT: ScenarioSpec(
            description="no daylight at all; the house runs on the battery, then the grid",
            cloud_mean=0.3,
            cloud_slow_amplitude=0.2,
            cloud_fast_amplitude=0.05,
            daylight=False,
            initial_soc_pct=60.0,
            temperature_offset_c=-4.0,
            daily_temperature_swing_c=2.0,
            start_local_hour=21.0,
        ),
        Scenario.BATTERY_FULL: ScenarioSpec(
            description="clear sky and a full battery: the surplus is exported",
            cloud_mean=0.03,
            cloud_slow_amplitude=0.05,
            cloud_fast_amplitude=0.02,
            daylight=True,
            initial_soc_pct=100.0,
            temperature_offset_c=3.0,
            daily_temperature_swing_c=6.0,
            start_local_hour=13.0,
        ),
        Scenario.BATTERY_EMPTY: ScenarioSpec(
            description="overcast and the battery at its reserve: the deficit is imported",
            cloud_mean=0.97,
            cloud_slow_amplitude=0.04,
            cloud_fast_amplitude=0.02,
            daylight=True,
            initial_soc_pct=None,
            temperature_offset_c=-2.0,
            daily_temperature_swing_c=2.0,
            overcast_transmittance=0.45,
            start_local_hour=18.0,
        ),
    }
)


def scenario_spec(scenario: Scenario | str) -> tuple[Scenario, ScenarioSpec]:
    """The scenario (parsed if a name) and its spec."""
    member = scenario if isinstance(scenario, Scenario) else Scenario.parse(scenario)
    return member, SCENARIOS[member]


def scenario_start(scenario: Scenario | str, *, year: int, utc_offset_h: float) -> datetime:
    """The scenario's default start: its day of ``year`` at its local hour, in UTC."""
    _, spec = scenario_spec(scenario)
    month, day = spec.start_month_day
    local_midnight = datetime(year, month, day, tzinfo=UTC)
    return local_midnight + timedelta(hours=spec.start_local_hour - utc_offset_h)
