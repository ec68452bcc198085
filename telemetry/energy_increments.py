"""Energy per reading from successive readings of one site (pure; docs/protocol.md, "Energy").

An :class:`EnergyIntegrator` is fed the site's composed readings in true
order (a time on one continuous axis and the totals sections) and returns,
per reading, the energy in Wh over (previous reading, this reading]: PV yield,
grid import and export, battery charge and discharge, and house consumption.
The hub's rollups then only add them up (exactly once, by the reading's key).

Sources, per quantity, in this order:

- **a counter** of the device: ``solar.energy_total_wh`` (PV yield),
  ``grid.import_energy_wh``, ``grid.export_energy_wh``. A site whose PV is
  measured only by a PV inverter (no ``solar`` values, no battery ever seen)
  has its AC output taken as PV yield: ``inverter.energy_total_wh``, else
  ``inverter.ac_power_w`` (its inverter losses left out). Never on a site with
  a battery: a hybrid inverter's AC counter adds what the battery discharged
  and leaves out the PV that charged it, so it is no PV yield; such a site's
  PV is unknown unless it has ``solar`` values. Each source keeps its own
  baseline. A counter's delta is used when the counter was also read at the
  moment the quantity was last accounted (contiguous). A counter going
  backwards is a reset or a replaced device (a new baseline, never negative
  energy) unless adding the register's wrap (a u32 rolling over, where the map
  says its width) gives a plausible delta. A delta above ``max_power_w`` times
  the time since the last accounting, plus the counter's step, is rejected as
  a replaced device or a glitch (a new baseline). Both are counted.
- **the integrated power**: ``solar.pv_power_w``; ``grid.power_w`` (> 0
  import, < 0 export); ``battery.power_w`` (> 0 discharge, < 0 charge). The
  trapezoid of the linear interpolation between two samples, split exactly
  where the line crosses zero: exact for constant power, unbiased on the
  ramps of the sun and of the battery (a left or right Riemann sum is off by
  half a step on every ramp, always the same way), and the samples are points
  in time, not averages over the interval. Never across more than
  ``max_gap_s`` between two samples: such time is *unmeasured*.

Time a quantity could not be measured makes its reading ``complete: false``;
its value then holds only what was measured. A quantity missing from a reading
(its device not fresh) is not in that reading's energy: the next reading that
has it accounts for the whole time since it was last accounted (a counter
bridges any gap; power only up to ``max_gap_s``). A counter's delta across a
gap is real energy and goes, whole, to the reading that closes the gap.

House consumption is the energy balance ``pv + import - export + discharge -
charge`` (conversion losses between the measuring points are in it). It is
given when a grid meter is known (import and export), PV too on a site with
an inverter or ``solar`` values, and every quantity the site has is accounted
up to this reading (one silent for over 15 minutes no
longer counts); otherwise the balance waits for the next reading where that
holds. House is never negative: a negative balance (a counter that moves in
steps, 10 Wh for some, beside a finely integrated power; devices read at
slightly different instants) gives 0 and is carried into the next readings,
where the counter's step makes up for it. Only a balance that stays negative
for 15 minutes (meters that disagree) is dropped: clamped, the amount and the
number of clamps counted. So the sum of house over any run of readings is the
sum of the balance, less what was clamped and what is still carried.

Values are sent to the mWh, the rounding carried to the next reading, so
the sum of what was sent stays within 0.0005 Wh of the sum measured.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

__all__ = [
    "COUNTERS",
    "CounterSpec",
    "EnergyEvent",
    "EnergyIntegrator",
    "EnergySettings",
    "Increments",
    "IntegratorState",
    "Quantity",
]

Sections = Mapping[str, Mapping[str, object]]


class Quantity(enum.StrEnum):
    """The measured quantities; the wire key is ``{value}_wh``. House is derived."""

    PV = "pv"
    IMPORT = "import"
    EXPORT = "export"
    CHARGE = "charge"
    DISCHARGE = "discharge"


# The counter of a quantity, as (section, field) of a reading.
COUNTERS: Final[Mapping[Quantity, tuple[str, str]]] = {
    Quantity.PV: ("solar", "energy_total_wh"),
    Quantity.IMPORT: ("grid", "import_energy_wh"),
    Quantity.EXPORT: ("grid", "export_energy_wh"),
}
# The power of a quantity: (section, field, sign): the quantity is the part of the
# power with that sign (docs/protocol.md, "A reading": signs).
POWERS: Final[Mapping[Quantity, tuple[str, str, int]]] = {
    Quantity.PV: ("solar", "pv_power_w", +1),
    Quantity.IMPORT: ("grid", "power_w", +1),
    Quantity.EXPORT: ("grid", "power_w", -1),
    Quantity.DISCHARGE: ("battery", "power_w", +1),
    Quantity.CHARGE: ("battery", "power_w", -1),
}
# A PV inverter's AC output, the PV yield of a site that measures no DC side and has
# no battery (module docstring).
PV_AC_COUNTER: Final = ("inverter", "energy_total_wh")
PV_AC_POWER: Final = ("inverter", "ac_power_w", +1)
_DECIMALS: Final = 3  # mWh on the wire
# A quantity not accounted for this long (its device gone quiet) stops holding
# house back; its energy joins the balance when it comes back. A negative house
# balance carried this long is dropped (clamped).
HOUSE_WAIT_S: Final = 900.0
# What a reading may carry (docs/protocol.md, "Energy": Hub behaviour): a quantity up
# to 1e9 Wh, a span up to a year. A longer time since is taken as unknown, a larger
# counter delta as a replaced device.
MAX_INCREMENT_WH: Final = 1e9
MAX_SPAN_S: Final = 366 * 86_400.0
# A counter step assumed when the register map does not say (a map in kWh steps
# ticks 1,000 Wh at once): the plausibility check then allows that much more.
DEFAULT_STEP_WH: Final = 1000.0


class EnergyEvent(enum.StrEnum):
    """Something the integrator did not take at face value (counted, logged by the caller)."""

    COUNTER_RESET = "counter_reset"  # went backwards: a reset or a replaced device
    COUNTER_ROLLOVER = "counter_rollover"  # wrapped at the register's width
    COUNTER_REJECTED = "counter_rejected"  # jumped more than max power allows
    UNMEASURED = "unmeasured"  # part of a span could not be measured
    HOUSE_CLAMPED = "house_clamped"  # the balance stayed negative: dropped


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """What the register map says of a counter: its wrap (Wh; None: unknown) and step (Wh)."""

    wrap_wh: float | None = None
    step_wh: float = DEFAULT_STEP_WH


@dataclass(frozen=True, slots=True)
class EnergySettings:
    max_gap_s: float = 10.0  # no power integrated across a longer time between samples
    max_power_w: float = 100_000.0  # a counter faster than this is a glitch or a new device
    counters: Mapping[Quantity, CounterSpec] = field(default_factory=dict)

    def counter(self, quantity: Quantity) -> CounterSpec:
        return self.counters.get(quantity, CounterSpec())


@dataclass(frozen=True, slots=True)
class Increments:
    """One reading's energy: Wh per quantity (only those accounted), house, events."""

    span_s: float | None  # since the previous reading; None: unknown (across a reboot)
    complete: bool
    wh: Mapping[Quantity, float]
    house_wh: float | None = None
    events: tuple[EnergyEvent, ...] = ()
    # The counter events, with the counter (``"grid.import_energy_wh"``), for the log.
    counter_events: tuple[tuple[EnergyEvent, str], ...] = ()

    def wire(self) -> dict[str, Any]:
        """The reading's ``energy`` object (docs/protocol.md, "Energy")."""
        out: dict[str, Any] = {
            "span_s": None if self.span_s is None else round(self.span_s, 3),
            "complete": self.complete,
        }
        for quantity in Quantity:
            if quantity in self.wh:
                out[f"{quantity.value}_wh"] = self.wh[quantity]
        if self.house_wh is not None:
            out["house_wh"] = self.house_wh
        return out


@dataclass(frozen=True, slots=True)
class IntegratorState:
    """Everything the integrator remembers, as plain values (persisted between runs).

    Times are on the caller's axis. ``accounted``: up to when each known
    quantity was accounted; ``counters``/``powers``: the last sample of each
    source (``"grid.power_w"``: time, value); ``carry``: the rounding not yet
    sent; ``house``: balance waiting for a reading where house can be given,
    or negative and carried since ``house_negative_since``.
    """

    last_t: float | None = None
    accounted: Mapping[str, float] = field(default_factory=dict)
    counters: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    powers: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    carry: Mapping[str, float] = field(default_factory=dict)
    house: float = 0.0
    house_negative_since: float | None = None

    def shifted(self, by: float) -> IntegratorState:
        """The same state with every time moved by ``by`` seconds (onto another axis)."""
        return replace(
            self,
            last_t=None if self.last_t is None else self.last_t + by,
            house_negative_since=(
                None if self.house_negative_since is None else self.house_negative_since + by
            ),
            accounted={k: t + by for k, t in self.accounted.items()},
            counters={k: (t + by, v) for k, (t, v) in self.counters.items()},
            powers={k: (t + by, v) for k, (t, v) in self.powers.items()},
        )

    def scaled(self, by: float) -> IntegratorState:
        """The same state with every time multiplied by ``by`` (onto a faster or slower axis)."""
        return replace(
            self,
            last_t=None if self.last_t is None else self.last_t * by,
            house_negative_since=(
                None if self.house_negative_since is None else self.house_negative_since * by
            ),
            accounted={k: t * by for k, t in self.accounted.items()},
            counters={k: (t * by, v) for k, (t, v) in self.counters.items()},
            powers={k: (t * by, v) for k, (t, v) in self.powers.items()},
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_t": self.last_t,
                "accounted": dict(self.accounted),
                "counters": {k: list(v) for k, v in self.counters.items()},
                "powers": {k: list(v) for k, v in self.powers.items()},
                "carry": dict(self.carry),
                "house": self.house,
                "house_negative_since": self.house_negative_since,
            },
            separators=(",", ":"),
            allow_nan=False,
        )

    @classmethod
    def from_json(cls, text: str) -> IntegratorState:
        """Parse :meth:`to_json`'s text; ValueError when it is not that."""
        try:
            data = json.loads(text)
            last_t = data["last_t"]
            return cls(
                last_t=None if last_t is None else float(last_t),
                accounted={str(k): float(t) for k, t in data["accounted"].items()},
                counters={str(k): (float(t), float(v)) for k, (t, v) in data["counters"].items()},
                powers={str(k): (float(t), float(v)) for k, (t, v) in data["powers"].items()},
                carry={str(k): float(v) for k, v in data["carry"].items()},
                house=float(data["house"]),
                house_negative_since=(
                    None
                    if data.get("house_negative_since") is None
                    else float(data["house_negative_since"])
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"not an energy state: {err}") from err


def _number(sections: Sections, section: str, name: str) -> float | None:
    value = sections.get(section, {}).get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@dataclass(frozen=True, slots=True)
class Sample:
    """A source's value in one reading: ``key`` names it (``"grid.power_w"``)."""

    key: str
    value: float
    sign: int = +1  # for a power: the quantity is its part of this sign


def _sample(sections: Sections, section: str, name: str, sign: int = +1) -> Sample | None:
    value = _number(sections, section, name)
    return None if value is None else Sample(f"{section}.{name}", value, sign)


def _sources(
    quantity: Quantity,
    sections: Sections,
    accounted: Mapping[str, float],
    counters: Mapping[str, tuple[float, float]],
    powers: Mapping[str, tuple[float, float]],
) -> tuple[Sample | None, Sample | None]:
    """(counter, power) of ``quantity`` in this reading (see the module docstring)."""
    counter_where = COUNTERS.get(quantity)
    counter = None if counter_where is None else _sample(sections, *counter_where)
    power = _sample(sections, *POWERS[quantity])
    if quantity is not Quantity.PV or counter is not None or power is not None:
        return counter, power
    # No solar values now: a PV inverter's AC output, on a site that never had solar
    # values nor a battery (a hybrid's AC side carries the battery's energy too).
    seen = (*counters, *powers)
    has_battery = (
        "battery" in sections
        or Quantity.CHARGE.value in accounted
        or Quantity.DISCHARGE.value in accounted
    )
    if has_battery or any(key.startswith("solar.") for key in seen):
        return None, None
    return _sample(sections, *PV_AC_COUNTER), _sample(sections, *PV_AC_POWER)


def signed_parts(p_a: float, p_b: float, seconds: float) -> tuple[float, float]:
    """Wh of the positive and of the negative part of a line from ``p_a`` to ``p_b`` W.

    The trapezoid, split where the line crosses zero (two triangles).
    """
    if seconds <= 0:
        return 0.0, 0.0
    if p_a >= 0 and p_b >= 0:
        return (p_a + p_b) / 2 * seconds / 3600, 0.0
    if p_a <= 0 and p_b <= 0:
        return 0.0, -(p_a + p_b) / 2 * seconds / 3600
    cross = seconds * p_a / (p_a - p_b)  # where the line is 0, from the start
    first, second = p_a * cross / 2 / 3600, p_b * (seconds - cross) / 2 / 3600
    return (first, -second) if p_a > 0 else (second, -first)


class EnergyIntegrator:
    """Per-reading energy from successive readings (see the module docstring)."""

    def __init__(self, settings: EnergySettings, state: IntegratorState | None = None) -> None:
        self.settings = settings
        self.state = state or IntegratorState()
        self._span_unknown = False
        self.counts: dict[EnergyEvent, int] = dict.fromkeys(EnergyEvent, 0)
        self.clamped_wh = 0.0

    def lose_time(self) -> None:
        """The time since the last reading cannot be known (a reboot before the clock is set).

        The next reading takes counter deltas as they are (no plausibility
        check is possible), integrates no power, and its span is None.
        """
        self._span_unknown = True

    def step(self, t: float, sections: Sections) -> Increments | None:
        """The energy of the reading at ``t``; None when it accounts for nothing (the first)."""
        state = self.state
        unknown = self._span_unknown or (
            state.last_t is not None and not 0 < t - state.last_t <= MAX_SPAN_S
        )
        self._span_unknown = False
        accounted = dict(state.accounted)
        counters = dict(state.counters)
        powers = dict(state.powers)
        carry = dict(state.carry)
        raw: dict[Quantity, float] = {}
        events: list[EnergyEvent] = []
        counter_events: list[tuple[EnergyEvent, str]] = []
        complete = True
        for quantity in Quantity:
            key = quantity.value
            # Sources are read as the previous readings left them (grid.power_w serves
            # import and export), and updated for the next reading.
            counter, power = _sources(quantity, sections, accounted, state.counters, state.powers)
            if counter is None and power is None:
                continue  # not in this reading: a later one accounts for its time
            since = accounted.get(key)
            if since is not None:
                energy, measured, event = self._measure(
                    quantity, t, since, counter, power, state.counters, state.powers, unknown
                )
                if event is not None and counter is not None:
                    events.append(event)
                    counter_events.append((event, counter.key))
                if not measured:
                    complete = False
                    events.append(EnergyEvent.UNMEASURED)
                raw[quantity] = energy
            accounted[key] = t
            if counter is not None:
                counters[counter.key] = (t, counter.value)
            if power is not None:
                powers[power.key] = (t, power.value)
        wh: dict[Quantity, float] = {}
        for quantity, energy in raw.items():
            exact = energy + carry.get(quantity.value, 0.0)
            sent = max(0.0, round(exact, _DECIMALS))  # never below 0, nor -0.0
            carry[quantity.value] = exact - sent
            wh[quantity] = sent
        has_pv = "solar" in sections or "inverter" in sections or Quantity.PV.value in accounted
        house, house_left = self._house(wh, accounted, t, state.house, needs_pv=has_pv)
        negative_since = state.house_negative_since
        if house is not None and house < 0:
            # Carried: a counter's next step makes up for it (module docstring).
            if negative_since is None:
                negative_since = t
            if t - negative_since > HOUSE_WAIT_S:
                events.append(EnergyEvent.HOUSE_CLAMPED)
                self.clamped_wh += -house
                negative_since = None
            else:
                house_left = house
            house = 0.0
        elif house is not None:
            house += 0.0  # -0.0 reads as 0.0
            negative_since = None
        for event in events:
            self.counts[event] += 1
        span = None if unknown or state.last_t is None else t - state.last_t
        self.state = IntegratorState(
            last_t=t,
            accounted=accounted,
            counters=counters,
            powers=powers,
            carry=carry,
            house=house_left,
            house_negative_since=negative_since,
        )
        if not wh:
            return None  # the first reading, or one with nothing to account
        return Increments(span, complete, wh, house, tuple(events), tuple(counter_events))

    def _house(
        self,
        wh: Mapping[Quantity, float],
        accounted: Mapping[str, float],
        t: float,
        held: float,
        *,
        needs_pv: bool,
    ) -> tuple[float | None, float]:
        """(house Wh now or None, balance left waiting): see the module docstring."""
        balance = held + (
            wh.get(Quantity.PV, 0.0)
            + wh.get(Quantity.IMPORT, 0.0)
            - wh.get(Quantity.EXPORT, 0.0)
            + wh.get(Quantity.DISCHARGE, 0.0)
            - wh.get(Quantity.CHARGE, 0.0)
        )
        has_meter = Quantity.IMPORT.value in accounted and Quantity.EXPORT.value in accounted
        if not has_meter or (needs_pv and Quantity.PV.value not in accounted):
            return None, 0.0  # no house for this site (yet): nothing to carry
        caught_up = all(when == t or t - when > HOUSE_WAIT_S for when in accounted.values())
        if not wh or not caught_up:
            return None, balance
        return round(balance, _DECIMALS), 0.0

    def _measure(
        self,
        quantity: Quantity,
        t: float,
        since: float,
        counter: Sample | None,
        power: Sample | None,
        counters: Mapping[str, tuple[float, float]],
        powers: Mapping[str, tuple[float, float]],
        unknown: bool,
    ) -> tuple[float, bool, EnergyEvent | None]:
        """(Wh over (since, t], whether all of it was measured, what happened to the counter)."""
        event: EnergyEvent | None = None
        last = counters.get(counter.key) if counter is not None else None
        if counter is not None and last is not None and last[0] == since:
            # The width and step of the counter a map describes (the solar or grid one).
            spec = (
                self.settings.counter(quantity)
                if counter.key == ".".join(COUNTERS[quantity])
                else CounterSpec()
            )
            delta = counter.value - last[1]
            limit = MAX_INCREMENT_WH if unknown else self._most(t - since, spec)
            if 0 <= delta <= limit:
                return delta, True, None
            if delta < 0 and spec.wrap_wh is not None and 0 <= delta + spec.wrap_wh <= limit:
                return delta + spec.wrap_wh, True, EnergyEvent.COUNTER_ROLLOVER
            event = EnergyEvent.COUNTER_RESET if delta < 0 else EnergyEvent.COUNTER_REJECTED
        # The power: the line between the last sample and this one, over (since, t].
        previous = powers.get(power.key) if power is not None else None
        if (
            unknown
            or power is None
            or previous is None
            or t - previous[0] > self.settings.max_gap_s
        ):
            return 0.0, False, event
        t0, p0 = previous
        start = max(since, t0)
        p = power.value
        p_start = p0 + (p - p0) * (start - t0) / (t - t0) if t > t0 else p
        positive, negative = signed_parts(p_start, p, t - start)
        energy = positive if power.sign > 0 else negative
        return energy, start <= since, event

    def _most(self, seconds: float, spec: CounterSpec) -> float:
        """The largest plausible counter delta over ``seconds``."""
        return min(MAX_INCREMENT_WH, self.settings.max_power_w * seconds / 3600 + spec.step_wh)
