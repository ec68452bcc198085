"""Which rollup minutes a batch of late readings needs refreshed (hub/storage/late_rollup.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.storage.late_rollup import (
    MERGE_GAP,
    POLICY_SLACK,
    RETENTION_MARGIN,
    RefreshRange,
    late_ranges,
    policy_reach,
    retention_floor,
)
from hub.storage.schema import TimescaleOptions

NOW = datetime(2026, 12, 3, 12, 0, 30, tzinfo=UTC)


def test_the_policy_reaches_back_its_window_less_one_run_and_slack() -> None:
    options = TimescaleOptions()
    assert policy_reach(options, NOW) == (
        NOW - timedelta(days=7) + timedelta(minutes=1) + POLICY_SLACK
    )
    wider = TimescaleOptions(rollup_refresh_start=timedelta(days=30))
    assert policy_reach(wider, NOW) < policy_reach(options, NOW)


def test_readings_the_policy_will_reach_need_no_refresh() -> None:
    reach = policy_reach(TimescaleOptions(), NOW)
    recent = [NOW, NOW - timedelta(minutes=5), NOW - timedelta(days=3), reach]
    assert late_ranges(recent, reach) == []


def test_late_minutes_become_whole_minute_ranges() -> None:
    reach = NOW - timedelta(days=7)
    old = datetime(2026, 11, 20, 8, 15, 42, 123456, tzinfo=UTC)
    assert late_ranges([old], reach) == [
        RefreshRange(
            datetime(2026, 11, 20, 8, 15, tzinfo=UTC), datetime(2026, 11, 20, 8, 16, tzinfo=UTC)
        )
    ]
    # The minute's first instant counts in it; its end is the next minute's.
    edge = datetime(2026, 11, 20, 8, 16, tzinfo=UTC)
    assert late_ranges([edge], reach) == [RefreshRange(edge, edge + timedelta(minutes=1))]


def test_near_minutes_merge_and_far_ones_stay_apart_in_time_order() -> None:
    reach = NOW - timedelta(days=7)
    start = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
    times = [start + timedelta(seconds=s) for s in range(0, 3600, 10)]  # an hour, 1 every 10 s
    times.append(start + timedelta(hours=1) + MERGE_GAP)  # at the gap: still one range
    far = start + timedelta(days=2)
    times += [far + timedelta(seconds=30), NOW]  # another range; now needs none
    ranges = late_ranges(reversed(times), reach)
    assert ranges == [
        RefreshRange(start, start + timedelta(hours=1) + MERGE_GAP + timedelta(minutes=1)),
        RefreshRange(far, far + timedelta(minutes=1)),
    ]


def test_without_retention_there_is_no_floor() -> None:
    assert retention_floor(TimescaleOptions(), NOW) is None


def test_nothing_is_refreshed_where_retention_may_have_dropped_the_raw_rows() -> None:
    # A refresh there would compute the kept rollup minutes again from nothing.
    options = TimescaleOptions(retention=timedelta(days=90))
    floor = retention_floor(options, NOW)
    assert floor == NOW - timedelta(days=90) + RETENTION_MARGIN
    reach = policy_reach(options, NOW)
    kept = floor + timedelta(minutes=5)
    times = [floor - timedelta(days=3), floor - timedelta(seconds=1), floor, kept]
    # The floor's own minute is not whole after it (NOW is 30 s past a minute).
    assert late_ranges(times, reach, floor) == [
        RefreshRange(kept.replace(second=0), kept.replace(second=0) + timedelta(minutes=1))
    ]
    on_the_minute = floor.replace(second=0) + timedelta(minutes=1)
    assert late_ranges([on_the_minute], reach, on_the_minute) == [
        RefreshRange(on_the_minute, on_the_minute + timedelta(minutes=1))
    ]
    # Longer chunks than the margin: the floor is a chunk inside the horizon.
    wide = TimescaleOptions(retention=timedelta(days=90), chunk_interval=timedelta(days=7))
    assert retention_floor(wide, NOW) == NOW - timedelta(days=83)


def test_quarter_hour_ranges_for_the_energy_aggregate() -> None:
    quarter = timedelta(minutes=15)
    watermark = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    times = [
        datetime(2026, 12, 3, 9, 7, 5, tzinfo=UTC),
        datetime(2026, 12, 3, 9, 44, 59, tzinfo=UTC),
        datetime(2026, 12, 3, 10, 59, 59, tzinfo=UTC),
        watermark,  # at the watermark: read through, not refreshed
        datetime(2026, 12, 1, 3, 30, tzinfo=UTC),  # more than MERGE_GAP away: its own range
    ]
    assert late_ranges(times, watermark, width=quarter) == [
        RefreshRange(
            datetime(2026, 12, 1, 3, 30, tzinfo=UTC), datetime(2026, 12, 1, 3, 45, tzinfo=UTC)
        ),
        RefreshRange(datetime(2026, 12, 3, 9, 0, tzinfo=UTC), watermark),
    ]
    # A floor inside a quarter hour: only whole quarter hours after it.
    floor = datetime(2026, 12, 3, 9, 10, tzinfo=UTC)
    assert late_ranges(times, watermark, floor, width=quarter) == [
        RefreshRange(datetime(2026, 12, 3, 9, 30, tzinfo=UTC), watermark)
    ]
