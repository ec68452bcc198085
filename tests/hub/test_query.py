from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.query import (
    DEFAULT_LIMIT,
    QueryError,
    format_bucket,
    parse_bucket,
    parse_readings_query,
    parse_time,
)

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def query(**kwargs: str | None) -> object:
    params: dict[str, str | None] = {"start": None, "end": None, "limit": None, "bucket": None}
    params.update(kwargs)
    return parse_readings_query(now=NOW, **params)


def test_defaults_are_the_last_hour() -> None:
    q = parse_readings_query(start=None, end=None, limit=None, bucket=None, now=NOW)
    assert (q.start, q.end, q.limit, q.bucket) == (
        NOW - timedelta(hours=1),
        NOW,
        DEFAULT_LIMIT,
        None,
    )


def test_explicit_values() -> None:
    q = parse_readings_query(
        start="2026-11-26T05:00:00Z",
        end="2026-11-26T07:30:00+01:00",
        limit="10",
        bucket="5m",
        now=NOW,
    )
    assert q.start == datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    assert q.end == datetime(2026, 11, 26, 6, 30, tzinfo=UTC)
    assert q.limit == 10
    assert q.bucket == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-11-26T05:00:00"}, "start"),  # naive
        ({"end": "2026-13-01T00:00:00Z"}, "end"),
        ({"start": "2026-11-26T07:00:00Z", "end": "2026-11-26T06:00:00Z"}, "start"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"bucket": "60"}, "bucket"),
        ({"bucket": "0s"}, "bucket"),
        ({"bucket": "2d"}, "bucket"),
        ({"bucket": "1s", "start": "2020-01-01T00:00:00Z"}, "bucket"),  # too many buckets
    ],
)
def test_bad_parameters_name_themselves(kwargs: dict[str, str], parameter: str) -> None:
    with pytest.raises(QueryError) as err:
        query(**kwargs)
    assert err.value.parameter == parameter
    assert str(err.value).startswith(f"{parameter}: ")


def test_bucket_spellings() -> None:
    assert parse_bucket("60s") == timedelta(seconds=60)
    assert parse_bucket("1h") == timedelta(hours=1)
    assert parse_bucket("1d") == timedelta(days=1)
    assert format_bucket(parse_bucket("2m")) == "120s"


def test_parse_time_accepts_offsets() -> None:
    assert parse_time("start", "2026-11-26T05:00:00.5+02:00") == datetime(
        2026, 11, 26, 3, 0, 0, 500000, tzinfo=UTC
    )
