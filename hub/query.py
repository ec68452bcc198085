"""Query parameters of ``GET /api/devices/{id}/readings``, parsed on plain values.

``start``/``end`` are RFC 3339 with a UTC offset (like a reading's ``ts``),
default the last hour; ``limit`` is 1..10,000 (default 1,000); ``order`` is
``asc`` (default, time order) or ``desc``; ``bucket`` is a duration such as
``60s``, ``5m``, ``1h`` or ``1d`` (1 s to 1 day), and a request may span at
most ``MAX_BUCKETS`` buckets. Any other parameter is refused, so a misspelt or
unsupported one (``format=csv``) is never silently ignored. Each problem raises
``QueryError`` naming the parameter; the API turns it into a 422.

Which readings ``limit`` keeps (docs/protocol.md, "Stored readings over HTTP"):
the newest when ``start`` is omitted or ``order=desc``, otherwise the oldest
from ``start`` (paging forward).

Times are taken to UTC here and must fall in years 1..9999 there (what Python
and both storages can hold): ``0001-01-01T00:00:00+05:00`` is year 0 in UTC, a
client mistake (422), not a storage failure.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

DEFAULT_SPAN: Final = timedelta(hours=1)
DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 10_000
MIN_BUCKET: Final = timedelta(seconds=1)
MAX_BUCKET: Final = timedelta(days=1)
MAX_BUCKETS: Final = 100_000

_BUCKET: Final = re.compile(r"(\d{1,7})(s|m|h|d)")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The range a query may name, in UTC: everything a datetime can hold.
EARLIEST: Final = datetime.min.replace(tzinfo=UTC)
LATEST: Final = datetime.max.replace(tzinfo=UTC)


# `token` is the viewer token (docs/protocol.md, "Doors"), checked before the query.
READINGS_PARAMETERS: Final = frozenset({"start", "end", "limit", "order", "bucket", "token"})


class Order(enum.StrEnum):
    ASC = "asc"
    DESC = "desc"


class QueryError(ValueError):
    """A query parameter is malformed or out of range."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True, slots=True)
class ReadingsQuery:
    start: datetime
    end: datetime
    limit: int
    bucket: timedelta | None
    order: Order = Order.ASC
    # Keep the newest `limit` readings of the range rather than the oldest.
    newest: bool = False


def check_parameters(names: Iterable[str], allowed: frozenset[str]) -> None:
    """Refuse the first parameter that is not ``allowed`` (in the order given)."""
    for name in names:
        if name not in allowed:
            known = ", ".join(sorted(allowed - {"token"}))
            raise QueryError(name, f"unknown parameter (known: {known})")


def parse_time(parameter: str, text: str) -> datetime:
    """An RFC 3339 timestamp with an offset (``Z`` or ``+hh:mm``), in UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError as err:
        raise QueryError(parameter, f"not an RFC 3339 time: {_quoted(text)}") from err
    if value.tzinfo is None or value.utcoffset() is None:
        raise QueryError(parameter, "must carry a UTC offset, e.g. 2026-11-26T05:30:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError as err:
        raise QueryError(parameter, "out of range: years 1 to 9999 in UTC") from err


def _quoted(text: str, limit: int = 40) -> str:
    """A client's text, shortened, for a one-line answer."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_bucket(text: str) -> timedelta:
    match = _BUCKET.fullmatch(text.strip())
    if match is None:
        raise QueryError(
            "bucket", f"expected a duration like 60s, 5m, 1h or 1d, not {_quoted(text)}"
        )
    bucket = timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if not MIN_BUCKET <= bucket <= MAX_BUCKET:
        raise QueryError("bucket", "must be between 1s and 1d")
    return bucket


def format_bucket(bucket: timedelta) -> str:
    """The canonical spelling, in seconds (``60s``), echoed in the answer."""
    return f"{int(bucket.total_seconds())}s"


def parse_readings_query(
    *,
    start: str | None,
    end: str | None,
    limit: str | None,
    bucket: str | None,
    now: datetime,
    order: str | None = None,
) -> ReadingsQuery:
    end_at = parse_time("end", end) if end is not None else now
    if start is not None:
        start_at = parse_time("start", start)
    else:
        # An hour before the earliest time there is: from the earliest time.
        start_at = end_at - min(DEFAULT_SPAN, end_at - EARLIEST)
    if start_at >= end_at:
        raise QueryError("start", "must be before end")
    if limit is None:
        count = DEFAULT_LIMIT
    else:
        try:
            count = int(limit)
        except ValueError as err:
            raise QueryError("limit", f"not an integer: {_quoted(limit)}") from err
        if not 1 <= count <= MAX_LIMIT:
            raise QueryError("limit", f"must be between 1 and {MAX_LIMIT}")
    try:
        direction = Order(order.strip().lower()) if order is not None else Order.ASC
    except ValueError as err:
        raise QueryError("order", f"asc or desc, not {_quoted(order or '')}") from err
    span = None
    if bucket is not None:
        span = parse_bucket(bucket)
        if (end_at - start_at) / span > MAX_BUCKETS:
            raise QueryError("bucket", f"too small for this range: at most {MAX_BUCKETS} buckets")
    newest = start is None or direction is Order.DESC
    return ReadingsQuery(start_at, end_at, count, span, direction, newest)
