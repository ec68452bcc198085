"""The hub-time estimator on plain values: best round trip, bounded error, agreement."""

from __future__ import annotations

import random

import pytest

from edge.hubtime import HubClock, HubOffset, NoEstimate, Refusal, TimeSample, estimate

HUB_OFFSET = 1_800_000_000.0  # the hub's wall clock minus the agent's monotonic clock


def trip(sent: float, out_s: float, back_s: float, *, hub_error: float = 0.0) -> TimeSample:
    """A round trip taking ``out_s`` to the hub and ``back_s`` back; the hub reads its clock
    on arrival (``hub_error`` added: a hub whose answer is wrong)."""
    return TimeSample(sent, sent + out_s + back_s, sent + out_s + HUB_OFFSET + hub_error)


def test_one_symmetric_round_trip_gives_the_offset_exactly() -> None:
    sample = trip(100.0, 0.004, 0.004)
    assert sample.rtt == pytest.approx(0.008)
    assert sample.offset == pytest.approx(HUB_OFFSET)
    assert sample.bound == pytest.approx(0.004)


@pytest.mark.parametrize(("out_s", "back_s"), [(0.0, 0.2), (0.2, 0.0), (0.15, 0.01)])
def test_an_asymmetric_round_trip_is_wrong_by_at_most_half_of_it(
    out_s: float, back_s: float
) -> None:
    sample = trip(100.0, out_s, back_s)
    assert abs(sample.offset - HUB_OFFSET) <= sample.bound + 1e-6  # float epoch seconds
    assert abs(sample.offset - HUB_OFFSET) == pytest.approx(abs(out_s - back_s) / 2, abs=1e-6)


def test_the_shortest_round_trip_of_a_round_is_kept() -> None:
    rng = random.Random(7)
    samples = [
        trip(100.0 + i, rng.uniform(0.001, 0.05), rng.uniform(0.001, 0.05)) for i in range(8)
    ]
    result = estimate(samples)
    assert isinstance(result, HubOffset)
    best = min(samples, key=lambda s: s.rtt)
    assert result.rtt == best.rtt
    assert result.offset == best.offset
    assert result.bound == best.rtt / 2
    assert abs(result.offset - HUB_OFFSET) <= result.bound + 1e-6
    assert result.agreeing == 8
    assert result.measured_mono == best.received_mono


def test_one_wrong_answer_with_the_shortest_trip_cannot_set_the_clock() -> None:
    # Seven honest answers, one 5 s off with the best round trip (a garbled or replayed frame).
    samples = [trip(100.0 + i, 0.01, 0.01) for i in range(7)]
    samples.append(trip(200.0, 0.001, 0.001, hub_error=5.0))
    result = estimate(samples)
    assert isinstance(result, NoEstimate)
    assert result.reason is Refusal.DISAGREE
    assert "1 of 8" in result.detail


def test_too_few_answers_or_too_slow_ones_are_not_trusted() -> None:
    few = estimate([trip(100.0 + i, 0.01, 0.01) for i in range(3)])
    assert isinstance(few, NoEstimate)
    assert few.reason is Refusal.TOO_FEW
    slow = estimate([trip(100.0 + i, 0.8, 0.8) for i in range(8)], max_rtt_s=1.0)
    assert isinstance(slow, NoEstimate)
    assert slow.reason is Refusal.TOO_FEW
    assert "0 of 8" in slow.detail


def test_a_sample_received_before_it_was_sent_is_refused() -> None:
    backwards = TimeSample(sent_mono=10.0, received_mono=9.0, hub_wall=HUB_OFFSET)
    result = estimate([backwards] * 4 + [trip(100.0, 0.01, 0.01)] * 3)
    assert isinstance(result, NoEstimate)
    assert result.reason is Refusal.TOO_FEW


def test_the_hub_clock_pairs_answers_with_requests_and_forgets_old_rounds() -> None:
    hub_clock = HubClock(round_samples=4, min_agreeing=4)
    hub_clock.start_round()
    stale = hub_clock.request(1.0)
    hub_clock.start_round()  # a new connection: the old round's request is forgotten
    ids = [hub_clock.request(10.0 + i) for i in range(4)]
    hub_clock.answer(stale, HUB_OFFSET + 1.005, 1.01)  # ignored
    hub_clock.answer(999, HUB_OFFSET, 1.0)  # never asked: ignored
    for i, request_id in enumerate(ids):
        hub_clock.answer(request_id, 10.0 + i + 0.002 + HUB_OFFSET, 10.0 + i + 0.004)
        hub_clock.answer(request_id, 0.0, 10.0 + i + 0.005)  # a duplicate: ignored
    assert hub_clock.samples == 4
    result = hub_clock.end_round()
    assert isinstance(result, HubOffset)
    assert result.offset == pytest.approx(HUB_OFFSET)
    assert hub_clock.trusted == result
    # A later round that fails keeps the trusted estimate.
    hub_clock.start_round()
    hub_clock.request(20.0)
    assert isinstance(hub_clock.end_round(), NoEstimate)
    assert hub_clock.trusted == result
