"""Backoff delays: exponential, capped, jittered, never near zero."""

from __future__ import annotations

import random

import pytest

from telemetry.backoff import Backoff, BackoffPolicy


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


def test_first_steps_come_before_the_exponential() -> None:
    policy = BackoffPolicy(60.0, 900.0, first_s=(1.0, 2.0, 5.0))
    assert [policy.step(n) for n in range(1, 10)] == [1, 2, 5, 60, 120, 240, 480, 900, 900]
    backoff = Backoff(policy, random.Random(3))
    delays = [backoff.next_delay() for _ in range(4)]
    assert 0.5 <= delays[0] <= 1.0
    assert 1.0 <= delays[1] <= 2.0
    assert 2.5 <= delays[2] <= 5.0
    assert 30.0 <= delays[3] <= 60.0
    with pytest.raises(ValueError, match="first_s"):
        BackoffPolicy(1.0, 10.0, first_s=(20.0,))


def test_the_agent_retries_a_refused_token_within_seconds_at_first() -> None:
    from edge.uplink import AUTH_BACKOFF

    assert sum(AUTH_BACKOFF.step(n) for n in range(1, 4)) <= 10.0
    assert AUTH_BACKOFF.step(4) >= 60.0  # then an operator has to act: no retry loop
