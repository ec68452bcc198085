"""The read planner: fewest requests, limits, gaps, one table per request."""

from __future__ import annotations

import math

import pytest

from drivers.planner import PlanError, ReadRequest, Span, plan_reads
from drivers.registers import RegisterType

H, IR = RegisterType.HOLDING, RegisterType.INPUT


def _covered(spans: list[Span], plan: tuple[ReadRequest, ...]) -> bool:
    return all(any(r.covers(s) for r in plan) for s in spans)


def test_contiguous_registers_take_one_request() -> None:
    spans = [Span(IR, a, 2) for a in range(0, 76, 2)]
    plan = plan_reads(spans)
    assert plan == (ReadRequest(IR, 0, 76),)


def test_small_gaps_are_bridged_large_ones_split() -> None:
    spans = [Span(IR, 0, 2), Span(IR, 10, 2), Span(IR, 100, 1)]
    assert plan_reads(spans, max_gap=8) == (ReadRequest(IR, 0, 12), ReadRequest(IR, 100, 1))
    assert plan_reads(spans, max_gap=7) == (
        ReadRequest(IR, 0, 2),
        ReadRequest(IR, 10, 2),
        ReadRequest(IR, 100, 1),
    )


def test_requests_never_cross_register_tables() -> None:
    spans = [Span(H, 10, 1), Span(IR, 11, 1), Span(H, 12, 1)]
    plan = plan_reads(spans)
    assert sorted((r.register_type.value, r.address, r.count) for r in plan) == [
        ("holding", 10, 3),
        ("input", 11, 1),
    ]


def test_a_device_limit_below_125_is_respected() -> None:
    spans = [Span(IR, a, 2) for a in range(0, 200, 2)]
    plan = plan_reads(spans, max_count=80)
    assert all(r.count <= 80 for r in plan)
    assert len(plan) == math.ceil(200 / 80)
    assert _covered(spans, plan)


def test_a_multi_register_value_is_never_split() -> None:
    # 62 two-register values from 0: a request of 125 would cut the 63rd value in half.
    spans = [Span(H, a, 2) for a in range(0, 250, 2)]
    plan = plan_reads(spans)
    assert all(r.count <= 125 for r in plan)
    assert _covered(spans, plan)
    assert len(plan) == 3  # 124 + 124 + 2 registers; no plan of 2 exists


def test_the_plan_is_minimal_for_uniform_spans() -> None:
    for count in (1, 2, 3):
        for n in (1, 7, 64, 130):
            spans = [Span(H, i * count, count) for i in range(n)]
            plan = plan_reads(spans)
            per_request = 125 // count
            assert len(plan) == math.ceil(n / per_request), (count, n)


def test_overlapping_and_duplicate_spans() -> None:
    spans = [Span(H, 5, 4), Span(H, 5, 4), Span(H, 6, 1), Span(H, 8, 2)]
    assert plan_reads(spans) == (ReadRequest(H, 5, 5),)


def test_impossible_spans_are_refused() -> None:
    with pytest.raises(PlanError, match="exceed"):
        plan_reads([Span(H, 0, 126)])
    with pytest.raises(PlanError):
        plan_reads([Span(IR, 0, 90)], max_count=80)
    with pytest.raises(PlanError):
        plan_reads([Span(H, 0xFFFF, 2)])


def test_bits_allow_2000_per_request() -> None:
    spans = [Span(RegisterType.COIL, a, 1) for a in range(0, 1500)]
    assert plan_reads(spans, max_count=2000) == (ReadRequest(RegisterType.COIL, 0, 1500),)
