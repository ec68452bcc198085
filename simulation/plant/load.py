"""The house: a base-load profile by time of day plus seeded appliance events.

The base load follows a typical European household curve (low at night, a morning
peak, a larger evening peak; shaped after the BDEW H0 standard load profile) with a
seeded ±8 % wobble. On top: a fridge compressor cycling all day, and appliances
(kettle, washing machine, dishwasher, oven, microwave, hair dryer) that run a seeded
number of times a day (Poisson) at seeded times inside their usual windows, each
with its own power profile, power factor and phase. A day's events are drawn from
(seed, local day) alone, so the load at an instant never depends on the step size.

Times are local: ``utc_offset_h`` shifts UTC to the household's clock.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from simulation.plant.noise import ValueNoise, generator

DAY_S: Final = 86_400.0
# (local hour, watts): the base load, interpolated linearly.
BASE_PROFILE: Final[tuple[tuple[float, float], ...]] = (
    (0.0, 180.0),
    (5.0, 150.0),
    (6.5, 300.0),
    (7.5, 550.0),
    (9.0, 350.0),
    (12.0, 450.0),
    (13.5, 350.0),
    (17.0, 450.0),
    (19.0, 750.0),
    (21.5, 550.0),
    (23.0, 250.0),
    (24.0, 180.0),
)
_BASE_HOURS: Final = tuple(point[0] for point in BASE_PROFILE)
BASE_POWER_FACTOR: Final = 0.95
BASE_PHASE_SHARES: Final = (0.4, 0.3, 0.3)
BASE_WOBBLE: Final = 0.08
L1: Final = (1.0, 0.0, 0.0)
L2: Final = (0.0, 1.0, 0.0)
L3: Final = (0.0, 0.0, 1.0)
THREE_PHASE: Final = (1 / 3, 1 / 3, 1 / 3)


@dataclass(frozen=True, slots=True)
class Segment:
    duration_s: float
    power_w: float
    power_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class Appliance:
    """An appliance run: a sequence of segments, ``runs_per_day`` times on average."""

    name: str
    segments: tuple[Segment, ...]
    phase_shares: tuple[float, float, float]
    runs_per_day: float
    # Local-hour windows a run starts in; one is picked at random per run.
    windows: tuple[tuple[float, float], ...]

    @property
    def duration_s(self) -> float:
        return sum(segment.duration_s for segment in self.segments)


@dataclass(frozen=True, slots=True)
class CyclingLoad:
    """A load switching on for ``on_s`` every ``period_s`` all day (a fridge compressor)."""

    name: str
    power_w: float
    power_factor: float
    on_s: float
    period_s: float
    phase_shares: tuple[float, float, float]


DEFAULT_APPLIANCES: Final = (
    Appliance("kettle", (Segment(180, 2200),), L2, 3.0, ((6, 9), (12, 14), (15, 18), (19, 22))),
    Appliance(
        "washing_machine",
        (Segment(900, 2000, 0.99), Segment(3600, 250, 0.7), Segment(600, 450, 0.8)),
        L3,
        0.6,
        ((8, 19),),
    ),
    Appliance(
        "dishwasher",
        (Segment(1200, 2000), Segment(2400, 80, 0.6), Segment(900, 1800)),
        L2,
        0.8,
        ((13, 15), (19, 23)),
    ),
    Appliance(
        "oven",
        (Segment(600, 3000), Segment(2400, 1100)),
        THREE_PHASE,
        0.5,
        ((11.5, 12.5), (17.5, 19)),
    ),
    Appliance("microwave", (Segment(240, 1200, 0.9),), L1, 1.5, ((7, 9), (12, 14), (18, 21))),
    Appliance("hair_dryer", (Segment(420, 1800),), L1, 0.7, ((6.5, 8.5),)),
)
DEFAULT_CYCLING: Final = (CyclingLoad("fridge", 90.0, 0.8, 15 * 60.0, 50 * 60.0, L1),)


@dataclass(frozen=True, slots=True)
class HouseSpec:
    appliances: tuple[Appliance, ...] = DEFAULT_APPLIANCES
    cycling: tuple[CyclingLoad, ...] = DEFAULT_CYCLING
    base_scale: float = 1.0


@dataclass(frozen=True, slots=True)
class HouseLoad:
    """The house's consumption at an instant, per phase (L1, L2, L3)."""

    phase_power_w: tuple[float, float, float]
    phase_reactive_var: tuple[float, float, float]
    active: tuple[str, ...]

    @property
    def power_w(self) -> float:
        return sum(self.phase_power_w)

    @property
    def reactive_var(self) -> float:
        return sum(self.phase_reactive_var)


@dataclass(frozen=True, slots=True)
class _Run:
    start_s: float
    appliance: Appliance


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; the means here are small (a few runs a day)."""
    limit = math.exp(-mean)
    count = 0
    product = rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def base_power(hour: float) -> float:
    """The base-load profile at a local hour (0..24)."""
    hour = hour % 24.0
    index = bisect.bisect_right(_BASE_HOURS, hour)
    (h0, p0), (h1, p1) = BASE_PROFILE[index - 1], BASE_PROFILE[min(index, len(BASE_PROFILE) - 1)]
    return p0 if h1 == h0 else p0 + (p1 - p0) * (hour - h0) / (h1 - h0)


def _reactive(power_w: float, power_factor: float) -> float:
    # Inductive loads: Q = P tan(acos(pf)) > 0.
    return power_w * math.tan(math.acos(power_factor))


@dataclass(slots=True)
class HouseModel:
    """The household of one seed; caches the appliance runs of the last days it looked at."""

    spec: HouseSpec
    seed: int
    # Runs a scenario starts at fixed instants (someone cooking as the demo opens).
    scripted: tuple[_Run, ...] = ()
    _days: dict[int, tuple[_Run, ...]] = field(default_factory=dict, repr=False)
    _wobble: ValueNoise = field(init=False, repr=False)
    _cycle_phase_s: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._wobble = ValueNoise(self.seed, "house.base", 600.0)
        rng = generator(self.seed, "house.cycling", 0)
        self._cycle_phase_s = tuple(rng.uniform(0, load.period_s) for load in self.spec.cycling)

    def runs_of_day(self, day: int) -> tuple[_Run, ...]:
        """The appliance runs starting on local day ``day`` (days since 1970-01-01 local)."""
        runs = self._days.get(day)
        if runs is None:
            if len(self._days) > 4:
                self._days.clear()
            runs = self._draw_day(day)
            self._days[day] = runs
        return runs

    def _draw_day(self, day: int) -> tuple[_Run, ...]:
        rng = generator(self.seed, "house.appliances", day)
        runs: list[_Run] = []
        for appliance in self.spec.appliances:
            for _ in range(_poisson(rng, appliance.runs_per_day)):
                low, high = rng.choice(appliance.windows)
                runs.append(_Run(day * DAY_S + rng.uniform(low, high) * 3600.0, appliance))
        return tuple(sorted(runs, key=lambda run: run.start_s))

    def at(self, when: datetime, utc_offset_h: float) -> HouseLoad:
        local_s = when.timestamp() + utc_offset_h * 3600.0
        day = math.floor(local_s / DAY_S)
        base = (
            self.spec.base_scale
            * base_power((local_s - day * DAY_S) / 3600.0)
            * (1.0 + BASE_WOBBLE * max(-2.0, min(2.0, self._wobble.at(local_s))))
        )
        # (watts, power factor, phase shares) of everything running now.
        parts: list[tuple[float, float, tuple[float, float, float]]] = [
            (base, BASE_POWER_FACTOR, BASE_PHASE_SHARES)
        ]
        active: list[str] = []
        for load, phase_s in zip(self.spec.cycling, self._cycle_phase_s, strict=True):
            if (local_s + phase_s) % load.period_s < load.on_s:
                active.append(load.name)
                parts.append((load.power_w, load.power_factor, load.phase_shares))
        for run in (*self.runs_of_day(day - 1), *self.runs_of_day(day), *self.scripted):
            segment = _segment_at(run.appliance.segments, local_s - run.start_s)
            if segment is not None:
                active.append(run.appliance.name)
                parts.append((segment.power_w, segment.power_factor, run.appliance.phase_shares))
        return HouseLoad(
            phase_power_w=_per_phase(parts, lambda p, _pf: p),
            phase_reactive_var=_per_phase(parts, _reactive),
            active=tuple(active),
        )


def scripted_runs(
    spec: HouseSpec, opening: Sequence[tuple[str, float]], start_local_s: float
) -> tuple[_Run, ...]:
    """Runs of the named appliances, ``offset_s`` after ``start_local_s`` (local seconds)."""
    by_name = {appliance.name: appliance for appliance in spec.appliances}
    runs = []
    for name, offset_s in opening:
        if name not in by_name:
            raise ValueError(f"no appliance named {name!r} (known: {', '.join(by_name)})")
        runs.append(_Run(start_local_s + offset_s, by_name[name]))
    return tuple(runs)


def _segment_at(segments: Sequence[Segment], elapsed_s: float) -> Segment | None:
    if elapsed_s < 0.0:
        return None
    for segment in segments:
        if elapsed_s < segment.duration_s:
            return segment
        elapsed_s -= segment.duration_s
    return None


def _per_phase(
    parts: Sequence[tuple[float, float, tuple[float, float, float]]],
    quantity: Callable[[float, float], float],
) -> tuple[float, float, float]:
    """Sum ``quantity(watts on the phase, power factor)`` over the parts, per phase."""
    l1, l2, l3 = (
        sum(quantity(power_w * shares[phase], pf) for power_w, pf, shares in parts)
        for phase in range(3)
    )
    return (l1, l2, l3)
