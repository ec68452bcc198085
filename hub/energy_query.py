"""Parameters and answer of ``GET /api/devices/{id}/energy`` (docs/protocol.md, "Energy over HTTP").

Pure: no I/O, every function on plain values.

- ``tz``: an IANA zone; default the device's stored zone (hub/site_zones.py), else UTC.
- ``period``: ``hour`` (default), ``day``, ``month`` or ``year``, in that zone's
  wall time: a day is midnight to midnight (23 or 25 hours across a daylight
  saving change), an hour is from one ``:00`` of the local clock to the next.
- ``start``/``end``: an RFC 3339 instant, or a plain local date naming a span
  (``2026-12-03`` a day, ``2026-12`` a month, ``2026`` a year). A date as
  ``start`` is its span's beginning, as ``end`` its span's end, so
  ``start=2026-01&end=2026-12`` is the whole year. Omitted: the span of the
  other (a date), or the end (the start) of the local day holding the other
  (an instant); both omitted: today.
- The range is widened to whole periods (start down, end up), and every
  interval in it is listed, at most :data:`MAX_INTERVALS`.
"""

from __future__ import annotations

import enum
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from hub.query import QueryError, parse_time
from hub.site_zones import check_timezone
from hub.storage.energy import ENERGY_BUCKET, EnergySums
from telemetry.reading import ENERGY_QUANTITIES

# A leap year of hours (8,784) fits; a decade of hours does not.
MAX_INTERVALS: Final = 10_000
ENERGY_PARAMETERS: Final = frozenset({"start", "end", "period", "tz", "token"})
DEFAULT_ZONE: Final = "UTC"
_PLAIN_DATE: Final = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Plain dates stay where a datetime can still hold the year after (years 1 to 9998).
_LAST_YEAR: Final = 9998


class Period(enum.StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class EnergyQuery:
    zone: zoneinfo.ZoneInfo
    period: Period
    edges: tuple[datetime, ...]  # UTC instants: interval i is [edges[i], edges[i+1])

    @property
    def timezone(self) -> str:
        return self.zone.key


def parse_zone(tz: str | None, stored: str | None) -> zoneinfo.ZoneInfo:
    """The zone of ``tz``, else the device's stored one, else UTC."""
    if tz is not None:
        try:
            return check_timezone(tz.strip())
        except ValueError as err:
            raise QueryError("tz", str(err)) from err
    if stored is not None:
        try:
            return check_timezone(stored)
        except ValueError:
            pass  # a zone this machine's tz database no longer has: the default
    return zoneinfo.ZoneInfo(DEFAULT_ZONE)


def _local_midnight(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    # Where midnight is skipped (a DST change at 00:00), the first instant of the
    # day is the change itself, which fold=0 gives.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _plain_span(parameter: str, text: str, zone: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """The local span a plain date names, as UTC instants."""
    match = _PLAIN_DATE.fullmatch(text)
    assert match is not None
    year = int(match[1])
    if not 1 <= year <= _LAST_YEAR:
        raise QueryError(parameter, f"year out of range: 1 to {_LAST_YEAR}")
    try:
        if match[3] is not None:
            first = date(year, int(match[2]), int(match[3]))
            after = first + timedelta(days=1)
        elif match[2] is not None:
            first = date(year, int(match[2]), 1)
            after = _next_month(first)
        else:
            first, after = date(year, 1, 1), date(year + 1, 1, 1)
    except ValueError as err:
        raise QueryError(parameter, f"not a date: {text!r} ({err})") from err
    return _local_midnight(first, zone), _local_midnight(after, zone)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _day_of(instant: datetime, zone: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """The local day holding ``instant``, as UTC instants."""
    day = instant.astimezone(zone).date()
    return _local_midnight(day, zone), _local_midnight(day + timedelta(days=1), zone)


def floor_to_period(instant: datetime, period: Period, zone: zoneinfo.ZoneInfo) -> datetime:
    """The start of the local period holding ``instant`` (UTC)."""
    local = instant.astimezone(zone)
    if period is Period.HOUR:
        top = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        # A half-hour DST change (Australia/Lord_Howe) can leave no :00 in the
        # half hour before; step back an hour of wall time then.
        return top if top <= instant else (top - timedelta(hours=1))
    day = local.date()
    if period is Period.MONTH:
        day = day.replace(day=1)
    elif period is Period.YEAR:
        day = day.replace(month=1, day=1)
    return _local_midnight(day, zone)


def next_edge(edge: datetime, period: Period, zone: zoneinfo.ZoneInfo) -> datetime:
    """The start of the local period after the one starting at ``edge`` (UTC)."""
    if period is Period.HOUR:
        after = edge + timedelta(hours=1)
        local = after.astimezone(zone)
        if local.minute or local.second:
            # The clock moved by half an hour: this hour lasts to the next :00.
            top = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            after = max(top.astimezone(UTC), after)
        return after
    day = edge.astimezone(zone).date()
    if period is Period.DAY:
        following = day + timedelta(days=1)
    elif period is Period.MONTH:
        following = _next_month(day)
    else:
        following = date(day.year + 1, 1, 1)
    return _local_midnight(following, zone)


def _bound(
    parameter: str, text: str | None, zone: zoneinfo.ZoneInfo
) -> tuple[datetime, datetime] | None:
    """A parameter's span: a plain date's, or an instant as a span of no length."""
    if text is None:
        return None
    text = text.strip()
    if _PLAIN_DATE.fullmatch(text):
        return _plain_span(parameter, text, zone)
    instant = parse_time(parameter, text)
    return instant, instant


def parse_period(text: str | None) -> Period:
    if text is None:
        return Period.HOUR
    try:
        return Period(text.strip().lower())
    except ValueError as err:
        raise QueryError("period", f"hour, day, month or year, not {text[:40]!r}") from err


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``[start, end)`` as asked, in UTC, and the zone its dates were read in."""

    zone: zoneinfo.ZoneInfo
    start: datetime
    end: datetime


def parse_energy_query(
    *,
    start: str | None,
    end: str | None,
    period: str | None,
    tz: str | None,
    stored_zone: str | None,
    now: datetime,
) -> EnergyQuery:
    kind = parse_period(period)
    asked = parse_range(start=start, end=end, tz=tz, stored_zone=stored_zone, now=now)
    return EnergyQuery(asked.zone, kind, tuple(_edges(asked.start, asked.end, kind, asked.zone)))


def parse_range(
    *, start: str | None, end: str | None, tz: str | None, stored_zone: str | None, now: datetime
) -> TimeRange:
    """The range ``start``/``end`` name (module docstring), not widened to any period."""
    zone = parse_zone(tz, stored_zone)
    first = _bound("start", start, zone)
    last = _bound("end", end, zone)
    if first is None and last is None:
        first = last = _day_of(now, zone)
    elif first is None:
        assert last is not None
        first = last if last[0] != last[1] else _day_of(last[1] - timedelta(microseconds=1), zone)
    elif last is None:
        last = first if first[0] != first[1] else _day_of(first[0], zone)
    begin, finish = first[0], last[1]
    if begin >= finish:
        raise QueryError("start", "must be before end")
    return TimeRange(zone, begin, finish)


def _edges(
    begin: datetime, finish: datetime, period: Period, zone: zoneinfo.ZoneInfo
) -> list[datetime]:
    try:
        edge = floor_to_period(begin, period, zone)
        edges = [edge]
        while edge < finish:
            if len(edges) > MAX_INTERVALS:
                raise QueryError(
                    "period",
                    f"too many {period.value} intervals in this range: at most {MAX_INTERVALS}; "
                    "ask for a longer period or a shorter range",
                )
            edge = next_edge(edge, period, zone)
            edges.append(edge)
    except OverflowError as err:
        raise QueryError("end", "out of range: years 1 to 9998") from err
    for edge in edges:
        if (edge - _EPOCH) % ENERGY_BUCKET:
            # Only zones' offsets before 1980 (local mean times) are not whole quarter hours.
            raise QueryError(
                "tz", f"{zone.key} is not a whole quarter hour from UTC at {edge.isoformat()}"
            )
    return edges


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits) + 0.0


def _ratio(part: float | None, whole: float | None) -> float | None:
    """``part / whole`` in percent; None when unknown or the whole is 0."""
    if part is None or whole is None or whole <= 0.0:
        return None
    return _rounded(100.0 * part / whole)


def energy_values(sums: EnergySums | None, complete: bool) -> dict[str, Any]:
    """An interval's (or the total's) quantities, ratios and completeness."""
    quantities = sums.quantities if sums is not None else (None,) * len(ENERGY_QUANTITIES)
    named = dict(zip(ENERGY_QUANTITIES, quantities, strict=True))
    values: dict[str, Any] = {name: _rounded(value) for name, value in named.items()}
    pv, export = named["pv_wh"], named["export_wh"]
    house, grid_import = named["house_wh"], named["import_wh"]
    values["self_consumption_pct"] = _ratio(
        None if pv is None or export is None else pv - export, pv
    )
    values["autarky_pct"] = _ratio(
        None if house is None or grid_import is None else house - grid_import, house
    )
    values["complete"] = complete
    return values


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime  # local, with its offset
    end: datetime
    values: dict[str, Any]


def intervals(query: EnergyQuery, sums: Sequence[EnergySums | None]) -> Iterator[Interval]:
    zone = query.zone
    for index, found in enumerate(sums):
        start, end = query.edges[index], query.edges[index + 1]
        complete = found is not None and found.covers(end - start)
        yield Interval(start.astimezone(zone), end.astimezone(zone), energy_values(found, complete))


def total(interval_sums: Iterable[EnergySums | None], complete: bool) -> dict[str, Any]:
    combined: EnergySums | None = None
    for found in interval_sums:
        if found is not None:
            combined = found if combined is None else combined.plus(found)
    return energy_values(combined, complete)


def energy_answer(
    device_id: str, query: EnergyQuery, sums: Sequence[EnergySums | None]
) -> dict[str, Any]:
    """The JSON answer (docs/protocol.md, "Energy over HTTP")."""
    listed = list(intervals(query, sums))
    zone = query.zone
    return {
        "device_id": device_id,
        "timezone": query.timezone,
        "period": query.period.value,
        "start": query.edges[0].astimezone(zone).isoformat(),
        "end": query.edges[-1].astimezone(zone).isoformat(),
        "intervals": [
            {"start": i.start.isoformat(), "end": i.end.isoformat(), **i.values} for i in listed
        ],
        "total": total(sums, all(i.values["complete"] for i in listed)),
    }
