"""Counting refusals per seq: given up at the limit, settled by an ack, bounded."""

from __future__ import annotations

from edge.refusals import Refusals


def test_a_seq_is_given_up_at_the_third_refusal_unless_acked_between() -> None:
    refusals = Refusals()
    assert [refusals.refused(7) for _ in range(3)] == [False, False, True]
    assert len(refusals) == 0  # given up: forgotten
    assert refusals.refused(8) is False
    refusals.acked([8])
    assert [refusals.refused(8) for _ in range(2)] == [False, False]


def test_memory_is_bounded_by_forgetting_the_oldest() -> None:
    refusals = Refusals(max_entries=10)
    for seq in range(25):
        refusals.refused(seq)
    assert len(refusals) <= 10
    assert refusals.refused(24) is False  # the newest kept its count
    assert refusals.refused(24) is True
