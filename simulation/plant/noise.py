"""Seeded smooth noise that depends on the simulated instant, never on the step size.

Every random process of the plant (clouds, grid voltage and frequency, the house's
base-load wobble) is a *value noise*: a standard normal value at knots every
``period_s`` seconds, drawn from a generator seeded with (seed, stream, knot), and a
smooth (cosine) interpolation between knots. So the value at an instant is the same
whether the plant got there in one-second or one-hour steps, and two plants with the
same seed produce the same series (``random.Random`` seeded with a ``str`` hashes it
with SHA-512, independent of ``PYTHONHASHSEED``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Final

# Knot values are kept for the few knots around the latest instant only.
_CACHE_SIZE: Final = 64


@dataclass(slots=True)
class ValueNoise:
    """A smooth, zero-mean, unit-variance-at-the-knots signal of time, seeded."""

    seed: int
    stream: str
    period_s: float
    _knots: dict[int, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ValueError(f"period_s must be > 0, got {self.period_s!r}")

    def knot(self, index: int) -> float:
        """The standard-normal value at knot ``index`` (at ``index * period_s``)."""
        value = self._knots.get(index)
        if value is None:
            if len(self._knots) >= _CACHE_SIZE:
                self._knots.clear()
            value = random.Random(f"{self.seed}:{self.stream}:{index}").gauss(0.0, 1.0)
            self._knots[index] = value
        return value

    def at(self, t_s: float) -> float:
        """The signal at ``t_s`` seconds (any epoch; the plant uses Unix time)."""
        position = t_s / self.period_s
        index = math.floor(position)
        fraction = position - index
        # Cosine interpolation: continuous, with a zero slope at the knots.
        weight = (1.0 - math.cos(math.pi * fraction)) / 2.0
        return self.knot(index) * (1.0 - weight) + self.knot(index + 1) * weight


def generator(seed: int, stream: str, index: int) -> random.Random:
    """A generator for one seeded set of draws (for example one day of appliance events)."""
    return random.Random(f"{seed}:{stream}:{index}")
