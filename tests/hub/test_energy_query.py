"""The energy route's parameters and intervals, on plain values (hub/energy_query.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.energy_query import (
    MAX_INTERVALS,
    EnergyQuery,
    energy_answer,
    parse_energy_query,
)
from hub.query import QueryError
from hub.storage.energy import EnergySums

NOW = datetime(2026, 12, 3, 22, 30, tzinfo=UTC)


def query(**params: Any) -> EnergyQuery:
    base: dict[str, Any] = {"start": None, "end": None, "period": None, "tz": None}
    base.update(params)
    return parse_energy_query(stored_zone=params.pop("stored_zone", None), now=NOW, **base)


def local(q: EnergyQuery) -> list[str]:
    return [edge.astimezone(q.zone).isoformat() for edge in q.edges]


def test_default_is_today_by_hour_in_the_stored_zone() -> None:
    q = parse_energy_query(
        start=None, end=None, period=None, tz=None, stored_zone="Europe/Berlin", now=NOW
    )
    # 22:30 UTC on 3 December is 23:30 in Berlin: still the 3rd there.
    assert (q.timezone, q.period.value, len(q.edges) - 1) == ("Europe/Berlin", "hour", 24)
    assert local(q)[0] == "2026-12-03T00:00:00+01:00"
    tokyo = parse_energy_query(
        start=None, end=None, period=None, tz=None, stored_zone="Asia/Tokyo", now=NOW
    )
    assert local(tokyo)[0] == "2026-12-04T00:00:00+09:00"  # already the 4th in Tokyo


def test_no_zone_anywhere_is_utc_and_tz_overrides_the_stored_one() -> None:
    assert query().timezone == "UTC"
    q = parse_energy_query(
        start=None, end=None, period=None, tz="Asia/Kolkata", stored_zone="Europe/Berlin", now=NOW
    )
    assert q.timezone == "Asia/Kolkata"


@pytest.mark.parametrize(
    ("day", "hours", "third"),
    [
        ("2026-03-29", 23, "2026-03-29T03:00:00+02:00"),
        ("2026-10-25", 25, "2026-10-25T02:00:00+02:00"),
        ("2026-06-01", 24, "2026-06-01T02:00:00+02:00"),
    ],
)
def test_berlin_change_days_have_23_and_25_hours(day: str, hours: int, third: str) -> None:
    q = query(start=day, tz="Europe/Berlin")
    assert len(q.edges) - 1 == hours
    assert local(q)[2] == third
    assert all(b - a == timedelta(hours=1) for a, b in zip(q.edges, q.edges[1:], strict=False))
    (whole_day,) = zip(q.edges[:1], q.edges[-1:], strict=True)
    assert whole_day[1] - whole_day[0] == timedelta(hours=hours)
    assert len(query(start=day, tz="Europe/Berlin", period="day").edges) == 2


def test_half_and_quarter_hour_zones_have_their_own_hours() -> None:
    india = query(start="2026-12-03", tz="Asia/Kolkata")
    assert india.edges[0] == datetime(2026, 12, 2, 18, 30, tzinfo=UTC)
    nepal = query(start="2026-12-03", tz="Asia/Kathmandu", period="day")
    assert nepal.edges == (
        datetime(2026, 12, 2, 18, 15, tzinfo=UTC),
        datetime(2026, 12, 3, 18, 15, tzinfo=UTC),
    )


def test_lord_howe_half_hour_dst_change_keeps_hours_on_the_local_clock() -> None:
    # 2026-10-04 02:00 +10:30 becomes 02:30 +11:00: the hour from 01:00 runs to 03:00.
    q = query(start="2026-10-04", tz="Australia/Lord_Howe")
    shown = local(q)
    assert "2026-10-04T01:00:00+10:30" in shown
    after = shown[shown.index("2026-10-04T01:00:00+10:30") + 1]
    assert after == "2026-10-04T03:00:00+11:00"
    assert len(q.edges) - 1 == 23  # a day of 23.5 hours, its hours on the local :00


def test_plain_dates_name_spans_and_end_takes_its_span_end() -> None:
    year = query(start="2026", period="month", tz="Europe/Berlin")
    assert len(year.edges) - 1 == 12
    assert local(year)[0] == "2026-01-01T00:00:00+01:00"
    assert local(year)[-1] == "2027-01-01T00:00:00+01:00"
    months = query(start="2026-01", end="2026-03", period="month", tz="UTC")
    assert len(months.edges) - 1 == 3
    days = query(start="2026-02-27", end="2026-03-01", period="day", tz="UTC")
    assert local(days) == [
        "2026-02-27T00:00:00+00:00",
        "2026-02-28T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00",
        "2026-03-02T00:00:00+00:00",
    ]


def test_instants_are_widened_to_whole_periods() -> None:
    q = query(start="2026-12-03T10:20:00Z", end="2026-12-03T12:10:00+01:00", tz="UTC")
    assert local(q) == [
        "2026-12-03T10:00:00+00:00",
        "2026-12-03T11:00:00+00:00",
        "2026-12-03T12:00:00+00:00",
    ]
    # An instant alone: from it to the end of its local day, or from that day's start.
    assert local(query(start="2026-12-03T10:20:00Z", tz="UTC"))[-1] == "2026-12-04T00:00:00+00:00"
    assert len(query(start="2026-12-03T10:20:00Z", tz="UTC").edges) == 15
    assert local(query(end="2026-12-03T10:20:00Z", tz="UTC"))[0] == "2026-12-03T00:00:00+00:00"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"period": "fortnight"}, "period"),
        ({"tz": "Nowhere/City"}, "tz"),
        ({"start": "2026-02-30"}, "start"),
        ({"start": "26-12-03"}, "start"),
        ({"start": "2026-12-04", "end": "2026-12-03T00:00:00Z"}, "start"),
        ({"start": "2000", "end": "2026", "period": "hour"}, "period"),
        ({"end": "9999"}, "end"),
    ],
)
def test_bad_parameters_name_themselves(params: dict[str, str], name: str) -> None:
    with pytest.raises(QueryError) as caught:
        query(**params)
    assert caught.value.parameter == name


def test_the_interval_cap_allows_a_leap_year_of_hours() -> None:
    assert len(query(start="2028", tz="UTC").edges) - 1 == 8784 <= MAX_INTERVALS


def sums(**values: float) -> EnergySums:
    names = ("pv_wh", "import_wh", "export_wh", "charge_wh", "discharge_wh", "house_wh")
    return EnergySums(
        values.pop("readings", 4),
        0,
        values.pop("span_s", 3600.0),
        900.0,
        tuple(values.get(n) for n in names),
    )


def test_the_answer_rounds_sums_and_computes_ratios() -> None:
    q = query(start="2026-12-03T00:00:00Z", end="2026-12-03T03:00:00Z", tz="UTC")
    answer = energy_answer(
        "site",
        q,
        [
            sums(pv_wh=1000.04, export_wh=250.0, house_wh=500.0, import_wh=100.0),
            None,
            sums(pv_wh=0.0, export_wh=0.0, house_wh=0.0, import_wh=0.0, span_s=1800.0),
        ],
    )
    first, empty, dark = answer["intervals"]
    assert (first["pv_wh"], first["self_consumption_pct"], first["autarky_pct"]) == (
        1000.0,
        75.0,
        80.0,
    )
    assert first["charge_wh"] is None
    assert first["complete"] is True
    assert empty["pv_wh"] is None
    assert empty["complete"] is False
    assert (dark["self_consumption_pct"], dark["autarky_pct"], dark["complete"]) == (
        None,
        None,
        False,  # only half the hour measured
    )
    assert answer["total"]["pv_wh"] == 1000.0
    assert answer["total"]["complete"] is False
