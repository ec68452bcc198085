"""Capped exponential backoff with jitter, for reconnects and failing devices.

The n-th consecutive failure waits ``d/2 + uniform(0, d/2)`` with
``d = min(cap, initial * 2**n)`` ("equal jitter"): many agents restarted
together spread out instead of knocking in step, and no delay falls below
half the step, so a failing peer is never hammered in a tight loop.

``first_s`` gives the steps of the first few failures before the exponential
part starts, for a failure that is often over in seconds but otherwise needs a
person: a device token refused by a hub that has not read it yet is accepted
on the next try, a wrong one is not fixed by retrying every second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff", "BackoffPolicy"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    initial_s: float
    cap_s: float
    first_s: tuple[float, ...] = ()  # the steps of the first failures, then the exponential

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.cap_s:
            raise ValueError(f"need 0 < initial_s <= cap_s, got {self.initial_s}, {self.cap_s}")
        if not all(0 < step <= self.cap_s for step in self.first_s):
            raise ValueError(f"need 0 < first_s <= cap_s, got {self.first_s}")

    def step(self, failures: int) -> float:
        """The un-jittered delay after ``failures`` consecutive failures (>= 1)."""
        if 1 <= failures <= len(self.first_s):
            return self.first_s[failures - 1]
        exponent = min(max(failures - 1 - len(self.first_s), 0), 62)  # 2**62 s: past any cap
        return min(self.cap_s, self.initial_s * 2.0**exponent)


@dataclass(slots=True)
class Backoff:
    """Counts consecutive failures under a policy and draws the jittered delays."""

    policy: BackoffPolicy
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        """Record one more failure; the delay to wait before the next attempt."""
        self.failures += 1
        step = self.policy.step(self.failures)
        return step / 2 + self.rng.uniform(0.0, step / 2)

    def reset(self) -> None:
        """A success: the next failure starts from the initial delay again."""
        self.failures = 0
