"""The readings table's columns, derived from the wire models, and the row <-> reading mapping.

One column per field of the protocol (docs/protocol.md, "A reading"), named
``{section}_{field}`` (``battery_soc_pct``), so storage, bucket averages and the
wire schema never drift apart: a field added to ``telemetry`` becomes a column
here without anyone editing a list.

A row is a plain tuple in :data:`READING_COLUMNS` order, holding Python values
(``datetime``, ``float``, ``str``, ``list[float]``, ``dict``); each backend adapts
it to its driver (asyncpg takes it as it is, SQLite wants integers and JSON
text). Reading a row back gives the wire form ``Reading.to_wire()`` would give.

This module does no I/O. :func:`to_rows` converts a batch in slices and lets
the event loop run between them, so a 2,000-row batch never stalls the live
path for the whole conversion (about 10 ms).
"""

from __future__ import annotations

import asyncio
import enum
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, get_args, get_origin

import orjson

from hub.storage.base import StoredReading
from telemetry import NUMERIC_FIELDS, SECTION_MODELS, format_ts
from telemetry.reading import ENERGY_QUANTITIES


class ColumnKind(enum.Enum):
    """How a protocol field is stored."""

    NUMBER = "number"  # double precision / REAL
    TEXT = "text"  # a state name
    NUMBER_LIST = "number_list"  # phase values: double precision[] / JSON text


@dataclass(frozen=True, slots=True)
class FieldColumn:
    """One protocol field and the column that stores it."""

    section: str
    field: str
    kind: ColumnKind

    @property
    def name(self) -> str:
        return f"{self.section}_{self.field}"

    @property
    def cumulative(self) -> bool:
        """A counter that only grows (``energy_total_wh``): a bucket keeps its last value."""
        return self.kind is ColumnKind.NUMBER and (
            self.field.endswith("_wh") or self.field.startswith("energy_")
        )

    @property
    def decimals(self) -> int:
        """Decimal places a bucket's value is rounded to (docs/protocol.md, "Stored readings")."""
        if self.field in _DECIMALS_BY_FIELD:
            return _DECIMALS_BY_FIELD[self.field]
        return _DECIMALS_BY_UNIT[self.field.rsplit("_", 1)[-1]]


# The resolution of a bucket's value, one digit finer than the registers of the
# devices we read give (a meter's power in 1 W, its voltage in 0.1 V, ...): an
# average keeps what the readings resolve and loses only float noise (8.7e-15).
_DECIMALS_BY_UNIT: Final = {"w": 1, "v": 2, "a": 3, "hz": 3, "wh": 1, "pct": 2, "c": 2}
_DECIMALS_BY_FIELD: Final = {"power_factor": 4, "cell_voltage_min_v": 4, "cell_voltage_max_v": 4}


def _kind_of(annotation: Any) -> ColumnKind:
    """The column kind of a section field, from its ``X | None`` annotation."""
    for member in get_args(annotation):
        # `Annotated[float, ...]` -> float; `Annotated[list[...], ...]` -> list[...]
        base = get_args(member)[0] if get_args(member) else member
        if base is float:
            return ColumnKind.NUMBER
        if base is str:
            return ColumnKind.TEXT
        if get_origin(base) is list:
            return ColumnKind.NUMBER_LIST
    raise TypeError(f"no storage mapping for a field annotated {annotation!r}")


def _field_columns() -> tuple[FieldColumn, ...]:
    columns = [
        FieldColumn(section, name, _kind_of(info.annotation))
        for section, model in SECTION_MODELS.items()
        for name, info in model.model_fields.items()
    ]
    numeric = tuple((c.section, c.field) for c in columns if c.kind is ColumnKind.NUMBER)
    # The telemetry package's own list is the reference for what "numeric" means.
    if numeric != tuple(NUMERIC_FIELDS):
        raise TypeError("storage columns disagree with telemetry.NUMERIC_FIELDS")
    return tuple(columns)


FIELD_COLUMNS: Final = _field_columns()
NUMERIC_COLUMNS: Final = tuple(c for c in FIELD_COLUMNS if c.kind is ColumnKind.NUMBER)
# Counters a bucket reports by their last value rather than their mean.
CUMULATIVE_COLUMNS: Final = tuple(c for c in NUMERIC_COLUMNS if c.cumulative)
SECTIONS: Final = tuple(SECTION_MODELS)

# Leading columns of every row, then one per field, then `extra`, then `devices`
# (each device's own values, docs/protocol.md "Several devices per role": a JSON
# object as it came, since its shape is a reading's own; schema version 3), then
# the reading's energy increments (docs/protocol.md, "Energy"; schema version 4):
# its span, whether it was measured whole, and one column per quantity. A reading
# carried energy when ``energy_complete`` is not null (its span may be unknown).
KEY_COLUMNS: Final = ("device_id", "ts", "seq", "received_at", "sections")
ENERGY_COLUMNS: Final = (
    "energy_span_s",
    "energy_complete",
    *(f"energy_{name}" for name in ENERGY_QUANTITIES),
)
READING_COLUMNS: Final = (
    *KEY_COLUMNS,
    *(c.name for c in FIELD_COLUMNS),
    "extra",
    "devices",
    *ENERGY_COLUMNS,
)
FIELDS_OFFSET: Final = len(KEY_COLUMNS)
EXTRA_INDEX: Final = FIELDS_OFFSET + len(FIELD_COLUMNS)
DEVICES_INDEX: Final = EXTRA_INDEX + 1
ENERGY_OFFSET: Final = DEVICES_INDEX + 1
ENERGY_SPAN_INDEX: Final = ENERGY_OFFSET
ENERGY_COMPLETE_INDEX: Final = ENERGY_OFFSET + 1
ENERGY_QUANTITIES_OFFSET: Final = ENERGY_OFFSET + 2
_NO_ENERGY: Final = (None,) * len(ENERGY_COLUMNS)
# Columns holding JSON (text in SQLite, jsonb in PostgreSQL).
JSON_INDEXES: Final = (EXTRA_INDEX, DEVICES_INDEX)

# `sections` is a bit mask of the sections a reading carried, so a section sent
# empty (`"inverter": {}`, valid on the wire) survives the round trip.
SECTION_BITS: Final = {section: 1 << index for index, section in enumerate(SECTIONS)}

Row = tuple[Any, ...]


def _section_readers() -> tuple[
    tuple[str, int, Callable[[Any], tuple[Any, ...]], tuple[None, ...]], ...
]:
    """Per section: its name, its bit, a getter of its fields' values, and the all-None row part.

    ``FIELD_COLUMNS`` lists fields section by section, so each section fills a
    contiguous run of the row; one ``attrgetter`` per section keeps
    :func:`to_row` cheap on the writer's path.
    """
    readers = []
    for section in SECTIONS:
        names = [c.field for c in FIELD_COLUMNS if c.section == section]
        readers.append((section, SECTION_BITS[section], _tuple_getter(names), (None,) * len(names)))
    return tuple(readers)


def _tuple_getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) == 1:  # attrgetter of one name returns the value, not a 1-tuple
        name = names[0]
        return lambda part: (getattr(part, name),)
    getter: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names)
    return getter


_SECTION_READERS: Final = _section_readers()


def to_row(stored: StoredReading, encode_extra: Callable[[Any], Any] | None = None) -> Row:
    """A stored reading as a tuple in :data:`READING_COLUMNS` order.

    ``encode_extra`` turns a present ``extra`` map (and ``devices``, in its wire
    form) into what the driver wants (JSON text).
    """
    reading = stored.reading
    values: list[Any] = [stored.device_id, reading.ts, reading.seq, stored.received_at, 0]
    mask = 0
    for section, bit, get, empty in _SECTION_READERS:
        part = getattr(reading, section)
        if part is None:
            values.extend(empty)
        else:
            mask |= bit
            values.extend(get(part))
    values[4] = mask
    extra = reading.extra
    values.append(extra if extra is None or encode_extra is None else encode_extra(extra))
    devices = reading.devices
    if devices is None:
        values.append(None)
    else:
        wire = {
            name: device.model_dump(mode="json", exclude_none=True)
            for name, device in devices.items()
        }
        values.append(wire if encode_extra is None else encode_extra(wire))
    energy = reading.energy
    if energy is None:
        values.extend(_NO_ENERGY)
    else:
        values.append(energy.span_s)
        values.append(energy.complete)
        values.extend([getattr(energy, name) for name in ENERGY_QUANTITIES])
    return tuple(values)


def json_text(value: Any) -> str:
    """Compact JSON text of ``extra`` or a phase list, for the database.

    The writer's path: a full reading's ``extra`` holds ~60 floats, which
    ``json.dumps`` formats in ~28 us and orjson in ~2 us (docs/benchmarks.md).
    """
    return orjson.dumps(value).decode()


# Rows converted between two yields to the event loop: about 1 ms of work.
ROWS_PER_SLICE: Final = 100


async def to_rows(
    rows: Sequence[StoredReading],
    encode_extra: Callable[[Any], Any] | None = None,
    *,
    per_slice: int = ROWS_PER_SLICE,
) -> list[Row]:
    """:func:`to_row` of every row, yielding to the event loop every ``per_slice`` rows.

    The writer's commit task runs on the hub's event loop: converting a full
    batch in one go would hold back every live reading behind it
    (docs/architecture.md, "Guarantees": hot path isolation).
    """
    out: list[Row] = []
    for start in range(0, len(rows), per_slice):
        if start:
            await asyncio.sleep(0)
        out.extend([to_row(stored, encode_extra) for stored in rows[start : start + per_slice]])
    return out


def wire_from_row(row: Sequence[Any]) -> dict[str, Any]:
    """The wire form (``Reading.to_wire()``) of a row in :data:`READING_COLUMNS` order.

    ``ts`` must be an aware ``datetime``; list columns are lists, ``extra`` and
    ``devices`` a dict or None.
    """
    wire: dict[str, Any] = {}
    seq = row[2]
    if seq is not None:
        wire["seq"] = seq
    wire["ts"] = format_ts(row[1])
    mask = row[4]
    sections: dict[str, dict[str, Any]] = {
        section: {} for section, bit in SECTION_BITS.items() if mask & bit
    }
    for column, value in zip(FIELD_COLUMNS, row[FIELDS_OFFSET:EXTRA_INDEX], strict=True):
        if value is None:
            continue
        values = sections.setdefault(column.section, {})
        values[column.field] = list(value) if column.kind is ColumnKind.NUMBER_LIST else value
    for section in SECTIONS:  # wire order: inverter, grid, solar, battery
        if section in sections:
            wire[section] = sections[section]
    extra = row[EXTRA_INDEX]
    if extra is not None:
        wire["extra"] = extra
    devices = row[DEVICES_INDEX]
    if devices is not None:
        wire["devices"] = devices
    complete = row[ENERGY_COMPLETE_INDEX]
    if complete is not None:
        energy: dict[str, Any] = {}
        span = row[ENERGY_SPAN_INDEX]
        if span is not None:
            energy["span_s"] = span
        energy["complete"] = bool(complete)  # SQLite keeps the flag as 0/1
        for name, value in zip(ENERGY_QUANTITIES, row[ENERGY_QUANTITIES_OFFSET:], strict=True):
            if value is not None:
                energy[name] = value
        wire["energy"] = energy
    return wire


def bucket_from_values(ts: datetime, values: Sequence[float | None]) -> dict[str, Any]:
    """``{"ts", "inverter": {...}, ...}`` from values in :data:`NUMERIC_COLUMNS` order.

    Each value is the bucket's average, or its last value for a cumulative
    counter, rounded to the column's resolution (``-0.0`` becomes ``0.0``).
    Sections with no value in the bucket are left out, like fields.
    """
    bucket: dict[str, Any] = {"ts": format_ts(ts)}
    for column, value in zip(NUMERIC_COLUMNS, values, strict=True):
        if value is not None:
            bucket.setdefault(column.section, {})[column.field] = (
                round(float(value), column.decimals) + 0.0
            )
    return bucket


def utc_from_micros(micros: int) -> datetime:
    """An aware UTC datetime from microseconds since the Unix epoch, exactly."""
    return _EPOCH + timedelta(microseconds=micros)


def micros_from_utc(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime, exactly (no float rounding)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


# Buckets are aligned on TimescaleDB's default time_bucket origin (2000-01-03,
# a Monday), so SQLite, date_bin and the continuous aggregate agree on edges.
BUCKET_ORIGIN: Final = datetime(2000, 1, 3, tzinfo=UTC)


def check_bucket(bucket: timedelta) -> None:
    """Raise ``ValueError`` unless ``bucket`` is a positive width."""
    if bucket <= timedelta(0):
        raise ValueError(f"bucket must be positive, not {bucket}")


def check_range(start: datetime, end: datetime) -> None:
    """Raise ``ValueError`` unless ``start`` and ``end`` are aware and ``start <= end``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must carry a UTC offset")
    if start > end:
        raise ValueError(f"start ({start.isoformat()}) is after end ({end.isoformat()})")
