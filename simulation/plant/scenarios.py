"""Named situations the simulated site can be put in (``ems sim --scenario NAME``).

A scenario sets the weather and where the battery starts; the physics are the same
in all of them. Names are the enum's values; ``Scenario.parse`` also accepts dashes
(``battery-full``) and any case.

| scenario | sky | battery at start |
| --- | --- | --- |
| sunny | clear, a few thin clouds | 50 % |
| cloudy | broken clouds passing, from minutes to an hour | 50 % |
| night | no daylight at all, whatever the clock says | 60 % |
| battery_full | clear | 100 %: surplus PV is exported |
| battery_empty | thick overcast | at the discharge reserve: the deficit is imported |
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
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
        ),
    }
)


def scenario_spec(scenario: Scenario | str) -> tuple[Scenario, ScenarioSpec]:
    """The scenario (parsed if a name) and its spec."""
    member = scenario if isinstance(scenario, Scenario) else Scenario.parse(scenario)
    return member, SCENARIOS[member]
