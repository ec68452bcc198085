"""A past day of the simulated site, as its agent would have sent it (for pictures and demos).

``ems sim`` runs its plant from now on, so a demo started a few minutes ago has
no yesterday. :func:`simulated_day` makes one: the plant (``simulation/plant``)
run over a whole simulated day of its scenario from the plant's local
midnight, whatever the wall clock says (as ``ems sim`` does), one reading per
``step_s`` stamped on the given day's clock, each with the ``energy`` the
agent's integrator (telemetry/energy_increments.py) gives it: readings in the
wire form of docs/protocol.md ("Readings", "Energy").

The sections are the plant's own values (``PlantState.sections``), not what a
Modbus read of them returns (registers round some values); the energy is
integrated from them exactly as the agent does with its readings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from simulation.plant.model import Plant
from simulation.plant.scenarios import Scenario, scenario_start
from telemetry import format_ts
from telemetry.energy_increments import EnergyIntegrator, EnergySettings

DAY_S: Final = 86_400
DEFAULT_STEP_S: Final = 5.0


def simulated_day(
    day: datetime,
    *,
    scenario: Scenario | str = Scenario.SUNNY,
    seed: int = 1,
    step_s: float = DEFAULT_STEP_S,
) -> list[dict[str, Any]]:
    """Readings over the whole day from ``day`` (an aware local midnight), seqs from 0.

    The first reading is one step before ``day``, so the day's first interval
    is measured whole; the last is one step before its end. Each reading but
    the first carries its ``energy``.
    """
    if day.tzinfo is None or day.utcoffset() is None:
        raise ValueError("day must be a timezone-aware datetime")
    if not 0 < step_s <= DAY_S:
        raise ValueError(f"step_s must be within (0, {DAY_S}], got {step_s!r}")
    step = timedelta(seconds=step_s)
    # The plant's household clock is its own (the longitude's hour): its local midnight.
    offset_h = Plant(scenario, seed=seed, start=day).utc_offset_h
    start = scenario_start(scenario, year=day.year, utc_offset_h=offset_h)
    local = start + timedelta(hours=offset_h)
    plant_midnight = start - (local - local.replace(hour=0, minute=0, second=0, microsecond=0))
    plant = Plant(scenario, seed=seed, start=plant_midnight - 2 * step)
    # The agent's default max_gap_s for readings step_s apart (docs/configuration.md,
    # [energy]): every step is measured, so every interval is complete.
    integrator = EnergyIntegrator(EnergySettings(max_gap_s=max(5 * step_s, 10.0)))
    readings: list[dict[str, Any]] = []
    for index in range(int(DAY_S / step_s) + 1):
        elapsed = index * step_s
        sections = plant.step(step_s).sections()
        increments = integrator.step(elapsed, sections)
        reading: dict[str, Any] = {"seq": index, "ts": format_ts(day + index * step - step)}
        reading.update(sections)
        if increments is not None:
            reading["energy"] = increments.wire()
        readings.append(reading)
    return readings
