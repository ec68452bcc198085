"""The edge's energy per reading: what it costs the sampler, and what it adds to a reading.

Steps the simulated plant (sunny, 1 s per reading) first, then times
:meth:`edge.energy.EnergyTracker.measure` over those readings: the integrator's
step (counters, trapezoids, house) and the state serialised for the outbox,
as the sampler does it for every reading. Prints microseconds per reading, the
bytes the ``energy`` object adds to a reading's JSON and the state's size.

    .venv/bin/python bench/edge_energy.py                 # 86,400 readings (a day at 1 Hz)
    .venv/bin/python bench/edge_energy.py --count 3600    # a quick check
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

from edge.energy import EnergyTracker
from simulation.plant import Plant
from telemetry.energy_increments import EnergySettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=86_400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plant = Plant("sunny", seed=1, start=datetime(2026, 6, 21, 0, 0, tzinfo=UTC))
    readings = [plant.step(1.0).sections() for _ in range(args.count)]
    t0_us = 1_782_000_000_000_000
    rates = []
    energy_bytes: list[int] = []
    state_bytes = 0
    for _ in range(args.rounds):
        tracker = EnergyTracker(EnergySettings(), boot="bench")
        began = time.perf_counter()
        for n, sections in enumerate(readings):
            energy, state = tracker.measure(float(n), t0_us + n * 1_000_000, sections)
            if energy is not None and len(energy_bytes) < len(readings):
                energy_bytes.append(len(json.dumps(energy, separators=(",", ":"))) + 10)
            state_bytes = len(state)
        rates.append((time.perf_counter() - began) / len(readings) * 1e6)
    print(f"readings: {len(readings):,} (sunny, 1 s apart), rounds: {args.rounds}")
    print(f"measure(): {statistics.median(rates):.1f} us per reading (median of rounds)")
    print(f"energy adds: {statistics.mean(energy_bytes):.0f} bytes per reading on average")
    print(f"state stored with each batch: {state_bytes} bytes")


if __name__ == "__main__":
    main()
