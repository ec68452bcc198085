"""Seeded value noise: deterministic, smooth, through its knots, independent of the query order."""

from __future__ import annotations

import statistics

import pytest

from simulation.plant.noise import ValueNoise


def test_passes_through_its_knots_and_depends_only_on_seed_stream_and_time() -> None:
    noise = ValueNoise(7, "clouds", 60.0)
    assert noise.at(120.0) == noise.knot(2)
    again = ValueNoise(7, "clouds", 60.0)
    times = [t * 13.7 for t in range(500)]
    assert [noise.at(t) for t in times] == [again.at(t) for t in reversed(times)][::-1]
    assert [noise.at(t) for t in times] != [ValueNoise(8, "clouds", 60.0).at(t) for t in times]
    assert [noise.at(t) for t in times] != [ValueNoise(7, "grid", 60.0).at(t) for t in times]


def test_is_continuous_between_knots_and_roughly_standard_normal_at_them() -> None:
    noise = ValueNoise(3, "x", 10.0)
    for t in range(0, 1000):
        step = abs(noise.at(t + 0.001) - noise.at(t))
        assert step < 0.01
    knots = [noise.knot(k) for k in range(-2000, 2000)]
    assert statistics.fmean(knots) == pytest.approx(0.0, abs=0.1)
    assert statistics.pstdev(knots) == pytest.approx(1.0, abs=0.1)


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="period_s"):
        ValueNoise(1, "x", 0.0)
