"""The read planner: fewest requests, limits, gaps, holes, one table per request."""

from __future__ import annotations

import math

import pytest

from drivers.planner import Hole, PlanError, ReadRequest, Span, minimal_reads, plan_reads
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


def test_a_gap_touching_a_hole_is_never_bridged() -> None:
    spans = [Span(IR, 0, 18), Span(IR, 26, 1)]
    assert plan_reads(spans, max_gap=16) == (ReadRequest(IR, 0, 27),)
    for hole in (Hole(IR, 18, 25), Hole(IR, 18, 18), Hole(IR, 25, 25), Hole(IR, 20, 21)):
        assert plan_reads(spans, max_gap=16, holes=[hole]) == (
            ReadRequest(IR, 0, 18),
            ReadRequest(IR, 26, 1),
        ), hole


def test_holes_beside_a_gap_or_in_another_table_do_not_split() -> None:
    spans = [Span(IR, 10, 2), Span(IR, 14, 2)]
    for hole in (Hole(IR, 0, 9), Hole(IR, 16, 20), Hole(H, 12, 13), Hole(IR, 100, 200)):
        assert plan_reads(spans, holes=[hole]) == (ReadRequest(IR, 10, 6),), hole


def test_max_gap_still_prices_gaps_between_holes() -> None:
    spans = [Span(IR, 0, 1), Span(IR, 10, 1), Span(IR, 40, 1)]
    holes = [Hole(IR, 20, 29)]
    assert plan_reads(spans, max_gap=8, holes=holes) == (
        ReadRequest(IR, 0, 1),
        ReadRequest(IR, 10, 1),
        ReadRequest(IR, 40, 1),
    )
    assert plan_reads(spans, max_gap=9, holes=holes) == (
        ReadRequest(IR, 0, 11),
        ReadRequest(IR, 40, 1),
    )


def test_a_span_inside_a_hole_is_refused() -> None:
    with pytest.raises(PlanError, match="unreadable range input 0x0010-0x0013") as caught:
        plan_reads([Span(IR, 0, 2), Span(IR, 14, 4)], holes=[Hole(IR, 16, 19)])
    assert caught.value.span == Span(IR, 14, 4)


def test_a_hole_must_be_a_range_of_addresses() -> None:
    with pytest.raises(ValueError, match="first <= last"):
        Hole(IR, 5, 4)
    with pytest.raises(ValueError, match="0xFFFF"):
        Hole(IR, 0, 0x10000)
    hole = Hole(IR, 0x3112, 0x3119)
    assert str(hole) == "input 0x3112-0x3119"
    assert hole.touches(IR, 0x3100, 19)
    assert not hole.touches(IR, 0x3100, 18)
    assert not hole.touches(IR, 0x311A, 4)
    assert not hole.touches(H, 0x3100, 19)
    assert not hole.touches(IR, 0x3115, 0)


def test_the_minimal_plan_bridges_every_gap_but_holes() -> None:
    # The charger's shape: 18 registers, a hole, one register, far blocks.
    spans = [Span(IR, 0x3100, 18), Span(IR, 0x311A, 1), Span(IR, 0x3201, 1)]
    holes = [Hole(IR, 0x3112, 0x3119), Hole(IR, 0x311C, 0x311C)]
    assert minimal_reads(spans) == (ReadRequest(IR, 0x3100, 27), ReadRequest(IR, 0x3201, 1))
    assert minimal_reads(spans, holes=holes) == (
        ReadRequest(IR, 0x3100, 18),
        ReadRequest(IR, 0x311A, 1),
        ReadRequest(IR, 0x3201, 1),
    )
    # Without the hole at 0x311C, 0x311A and 0x3201 still need two requests (> 125).
    assert len(minimal_reads(spans, holes=holes[:1])) == 3
    # max_count still binds the floor.
    many = [Span(H, a, 2) for a in range(0, 200, 4)]
    assert len(minimal_reads(many, max_count=80)) == 3


def test_the_minimal_plan_is_never_beaten_by_any_max_gap() -> None:
    holes = [Hole(IR, 100, 105), Hole(IR, 300, 300), Hole(IR, 480, 520)]
    spans = [
        span
        for span in (Span(IR, a, 1 + a % 3) for a in range(0, 600, 7))
        if not any(h.touches(IR, span.address, span.count) for h in holes)
    ]
    floor = minimal_reads(spans, holes=holes)
    assert _covered(spans, floor)
    for gap in range(0, 130, 3):
        plan = plan_reads(spans, max_gap=gap, holes=holes)
        assert _covered(spans, plan)
        assert not any(h.touches(r.register_type, r.address, r.count) for r in plan for h in holes)
        assert len(plan) >= len(floor), gap
