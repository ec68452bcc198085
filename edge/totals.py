"""A site's totals from several devices of one role (docs/protocol.md, "Several devices per role").

Pure logic on plain values: one section's fields from each device in, the
section's total out. Each field has one rule (:data:`RULES`), chosen for what
the total must mean to someone reading the site as one installation:

``SUM``
    Powers, currents and energy counters add up: two inverters deliver the sum
    of their powers, and the site's energy is the sum of the devices' counters.
    A sum is taken only when every counted device of the role is fresh in this
    reading (``complete``): a sum over the devices that happened to answer would
    show half a plant as the plant, and a summed counter would go backwards for
    the ticks a device missed (a false counter reset in every energy chart).
``MEAN``
    Voltages and frequencies are averaged: devices on one grid see the same
    voltage within their accuracy, and the mean is the best estimate of it.
``WEIGHTED``
    A battery's state of charge (and of health) is stored energy over
    capacity, so for several stacks it is ``sum(soc_i * C_i) / sum(C_i)``: a
    full 10 kWh stack and an empty 5 kWh one are 67 %, not 50 %. The weights
    are the stacks' capacities when every stack reports one
    (:func:`capacity_wh`), else the plain mean (the right answer for stacks of
    one model, the common case).
``MIN`` / ``MAX``
    The lowest cell of the site is the lowest of the stacks' lowest cells, and
    the highest the highest: those are the limits a BMS acts on. Temperatures
    take the highest, the one to watch.
``STATE``
    The devices' common state when they agree; else a fault anywhere shows
    (:data:`FAULT_WORDS`), so no total hides one; else ``"mixed"`` (the device
    table shows each).
``ONE``
    A grid power factor cannot be combined without the reactive powers, which
    the protocol does not carry: it is kept only when one device gives it.
``LIST_SUM`` / ``LIST_MEAN``
    Per-phase values, phase by phase (powers add, voltages average), when
    every device gives the same number of phases.

A single device's values pass unchanged, so a role with one device totals to
exactly what it reads.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = ["FAULT_WORDS", "RULES", "Rule", "capacity_wh", "total_section"]


class Rule(enum.Enum):
    SUM = "sum"
    MEAN = "mean"
    WEIGHTED = "weighted"
    MIN = "min"
    MAX = "max"
    STATE = "state"
    ONE = "one"
    LIST_SUM = "list_sum"
    LIST_MEAN = "list_mean"


RULES: Final[Mapping[str, Mapping[str, Rule]]] = {
    "inverter": {
        "ac_power_w": Rule.SUM,
        "ac_voltage_v": Rule.MEAN,
        "ac_current_a": Rule.SUM,
        "ac_frequency_hz": Rule.MEAN,
        "dc_power_w": Rule.SUM,
        "energy_total_wh": Rule.SUM,
        "temperature_c": Rule.MAX,
        "state": Rule.STATE,
    },
    "grid": {
        "power_w": Rule.SUM,
        "voltage_v": Rule.MEAN,
        "current_a": Rule.SUM,
        "frequency_hz": Rule.MEAN,
        "power_factor": Rule.ONE,
        "import_energy_wh": Rule.SUM,
        "export_energy_wh": Rule.SUM,
        "phase_voltage_v": Rule.LIST_MEAN,
        "phase_power_w": Rule.LIST_SUM,
    },
    "solar": {
        "pv_power_w": Rule.SUM,
        # Strings of different inverters are separate circuits: their mean is
        # only an indication (each device's own is in its entry).
        "pv_voltage_v": Rule.MEAN,
        "pv_current_a": Rule.SUM,
        "energy_today_wh": Rule.SUM,
        "energy_total_wh": Rule.SUM,
    },
    "battery": {
        "soc_pct": Rule.WEIGHTED,
        "soh_pct": Rule.WEIGHTED,
        "power_w": Rule.SUM,
        "voltage_v": Rule.MEAN,
        "current_a": Rule.SUM,
        "temperature_c": Rule.MAX,
        "cell_voltage_min_v": Rule.MIN,
        "cell_voltage_max_v": Rule.MAX,
        "state": Rule.STATE,
    },
}

# A state naming one of these (SunSpec "fault", a BMS "alarm" or "protection")
# wins over the others in a total.
FAULT_WORDS: Final = ("fault", "error", "alarm", "protect")
MIXED: Final = "mixed"
# `extra` names a BMS fills with its rated capacity (drivers/profiles/seplos.py:
# extra.bms_full_capacity_ah); any map may use them.
_CAPACITY_AH_SUFFIX: Final = "full_capacity_ah"
_CAPACITY_WH_SUFFIX: Final = "full_capacity_wh"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def capacity_wh(sections: Mapping[str, Mapping[str, object]]) -> float | None:
    """A battery device's capacity in Wh from its own values, or None when it gives none.

    An ``extra`` ending in ``full_capacity_wh``, else one ending in
    ``full_capacity_ah`` times the battery's voltage (stacks in parallel share
    it, so Ah alone would weight them right too, but Wh also covers stacks of
    different voltages).
    """
    extra = sections.get("extra", {})
    voltage = _number(sections.get("battery", {}).get("voltage_v"))
    for name, value in extra.items():
        number = _number(value)
        if number is not None and number > 0 and name.endswith(_CAPACITY_WH_SUFFIX):
            return number
    for name, value in extra.items():
        number = _number(value)
        if number is not None and number > 0 and name.endswith(_CAPACITY_AH_SUFFIX):
            return number * voltage if voltage is not None and voltage > 0 else None
    return None


def _state(values: Sequence[object]) -> str | None:
    states = [value for value in values if isinstance(value, str)]
    if not states:
        return None
    if all(state == states[0] for state in states):
        return states[0]
    for state in states:
        if any(word in state.lower() for word in FAULT_WORDS):
            return state
    return MIXED


def _lists(values: Sequence[object], *, add: bool) -> list[float] | None:
    lists = [value for value in values if isinstance(value, list)]
    if not lists or any(len(item) != len(lists[0]) for item in lists):
        return None
    phases: list[float] = []
    for column in zip(*lists, strict=True):
        numbers = [_number(value) for value in column]
        if any(number is None for number in numbers):
            return None
        total = sum(number for number in numbers if number is not None)
        phases.append(total if add else total / len(numbers))
    return phases


def _combine(
    rule: Rule, values: Sequence[object], weights: Sequence[float | None], complete: bool
) -> object | None:
    if rule is Rule.STATE:
        return _state(values)
    if rule is Rule.ONE:
        return values[0] if len(values) == 1 else None
    if rule in (Rule.LIST_SUM, Rule.LIST_MEAN):
        if rule is Rule.LIST_SUM and not complete:
            return None
        return _lists(values, add=rule is Rule.LIST_SUM)
    numbers = [_number(value) for value in values]
    known = [number for number in numbers if number is not None]
    if not known:
        return None
    if rule is Rule.SUM:
        return sum(known) if complete else None
    if rule is Rule.MIN:
        return min(known)
    if rule is Rule.MAX:
        return max(known)
    if rule is Rule.WEIGHTED:
        pairs = [(n, w) for n, w in zip(numbers, weights, strict=True) if n is not None]
        if all(w is not None and w > 0 for _, w in pairs):
            total_weight = sum(w for _, w in pairs if w is not None)
            return sum(n * w for n, w in pairs if w is not None) / total_weight
    return sum(known) / len(known)  # MEAN, and WEIGHTED without every weight


def total_section(
    section: str,
    parts: Sequence[Mapping[str, object]],
    *,
    weights: Sequence[float | None] | None = None,
    complete: bool = True,
) -> dict[str, object]:
    """The total of one section over the devices' ``parts`` (each device's fields).

    ``weights``: per part, its capacity for the ``WEIGHTED`` rule (None: not
    known). ``complete``: every counted device of the role is in ``parts``;
    without it, ``SUM`` fields are left out (see the module's docstring).
    Fields without a rule are left out.
    """
    if len(parts) == 1 and complete:
        return dict(parts[0])
    weights = list(weights) if weights is not None else [None] * len(parts)
    if len(weights) != len(parts):
        raise ValueError("one weight per part")
    rules = RULES.get(section, {})
    names: list[str] = []
    for part in parts:
        names.extend(name for name in part if name not in names)
    total: dict[str, object] = {}
    for name in names:
        rule = rules.get(name)
        if rule is None:
            continue
        given = [(part[name], w) for part, w in zip(parts, weights, strict=True) if name in part]
        value = _combine(rule, [v for v, _ in given], [w for _, w in given], complete)
        if value is not None:
            total[name] = value
    return total
