from __future__ import annotations

import logging

import pytest

from hub.gatekeeper import Gatekeeper, LogLimiter
from telemetry import FrameProblem, Rejected


def test_limiter_allows_a_burst_then_suppresses_until_the_window_ends() -> None:
    limiter = LogLimiter(burst=3, window_s=10.0)
    decisions = [limiter.decide("a", now=float(i) * 0.1) for i in range(10)]
    assert [d.log for d in decisions] == [True] * 3 + [False] * 7
    after = limiter.decide("a", now=10.5)
    assert after.log
    assert after.suppressed_before == 7


def test_limiter_keys_are_independent() -> None:
    limiter = LogLimiter(burst=1, window_s=10.0)
    assert limiter.decide("a", 0.0).log
    assert not limiter.decide("a", 0.1).log
    assert limiter.decide("b", 0.2).log


def test_limiter_memory_is_bounded() -> None:
    limiter = LogLimiter(burst=1, window_s=10.0, max_keys=100)
    for i in range(1000):
        limiter.decide(f"device{i}", now=float(i) * 0.001)
    assert len(limiter) <= 100


def test_gatekeeper_counts_every_rejection_and_logs_few(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keeper = Gatekeeper(limiter=LogLimiter(burst=2, window_s=60.0))
    caplog.set_level(logging.WARNING, logger="hub.gatekeeper")
    for i in range(50):
        keeper.reject("ems_001", Rejected(FrameProblem.NOT_JSON, "not JSON"), now=float(i))
    keeper.reject("ems_001", Rejected(FrameProblem.BINARY, "binary frame"), now=51.0)
    assert keeper.counts[FrameProblem.NOT_JSON] == 50
    assert keeper.counts[FrameProblem.BINARY] == 1
    assert len(caplog.records) == 2
    # The next window reports how many were suppressed.
    keeper.reject("ems_001", Rejected(FrameProblem.NOT_JSON, "not JSON"), now=61.0)
    assert "49 more bad frames" in caplog.records[2].getMessage()
