"""Backoff delays: exponential, capped, jittered, never near zero."""

from __future__ import annotations

import random

import pytest

from edge.backoff import Backoff, BackoffPolicy


def test_steps_double_up_to_the_cap() -> None:
    policy = BackoffPolicy(0.5, 30.0)
    assert [policy.step(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert policy.step(10_000) == 30.0


def test_delays_are_jittered_within_half_a_step_and_reset() -> None:
    backoff = Backoff(BackoffPolicy(1.0, 8.0), random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    for n, delay in enumerate(delays, start=1):
        step = min(8.0, 2.0 ** (n - 1))
        assert step / 2 <= delay <= step
    assert len({round(d / min(8.0, 2.0**i), 6) for i, d in enumerate(delays)}) > 1
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        BackoffPolicy(0.0, 1.0)
    with pytest.raises(ValueError, match="initial_s"):
        BackoffPolicy(2.0, 1.0)
