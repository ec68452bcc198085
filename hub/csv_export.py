"""Readings and energy as CSV files a spreadsheet opens (docs/protocol.md, "Energy over HTTP").

RFC 4180: one header row, CRLF line ends, a field quoted when it holds a comma,
a quote or a line break (the csv module's ``QUOTE_MINIMAL``). UTF-8 without a
byte order mark. Pure: rows in, text out.

Readings flatten to ``ts``, ``seq``, then one column per field of the sections
(``grid.power_w``), a phase list as one column per phase
(``grid.phase_power_w.1`` .. ``.3``), the energy increments (``energy.pv_wh``),
and ``extra`` as compact JSON (its names differ from reading to reading). A
site's per-device values (``devices``) are left to the JSON route.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

from hub.energy_query import Interval
from hub.storage.columns import FIELD_COLUMNS, ColumnKind
from telemetry.reading import ENERGY_QUANTITIES

MEDIA_TYPE: Final = "text/csv; charset=utf-8"
# The longest phase list a reading can carry (telemetry/reading.py).
PHASES: Final = 3
ENERGY_KEYS: Final = ("span_s", "complete", *ENERGY_QUANTITIES)
ENERGY_CSV_COLUMNS: Final = (
    "start",
    "end",
    *ENERGY_QUANTITIES,
    "self_consumption_pct",
    "autarky_pct",
    "complete",
)


def _reading_columns() -> tuple[tuple[str, ...], tuple[tuple[str, str, int | None], ...]]:
    header: list[str] = ["ts", "seq"]
    getters: list[tuple[str, str, int | None]] = []
    for column in FIELD_COLUMNS:
        if column.kind is ColumnKind.NUMBER_LIST:
            for phase in range(PHASES):
                header.append(f"{column.section}.{column.field}.{phase + 1}")
                getters.append((column.section, column.field, phase))
        else:
            header.append(f"{column.section}.{column.field}")
            getters.append((column.section, column.field, None))
    for key in ENERGY_KEYS:
        header.append(f"energy.{key}")
        getters.append(("energy", key, None))
    header.append("extra")
    return tuple(header), tuple(getters)


READING_CSV_COLUMNS, _GETTERS = _reading_columns()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def reading_cells(wire: dict[str, Any]) -> list[Any]:
    """One reading in wire form as the cells of :data:`READING_CSV_COLUMNS`."""
    cells: list[Any] = [wire["ts"], _cell(wire.get("seq"))]
    for section, field, phase in _GETTERS:
        value = (wire.get(section) or {}).get(field)
        if phase is not None:
            value = value[phase] if isinstance(value, list) and phase < len(value) else None
        cells.append(_cell(value))
    extra = wire.get("extra")
    cells.append("" if extra is None else json.dumps(extra, separators=(",", ":")))
    return cells


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as RFC 4180 text (CRLF after every row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def energy_rows(listed: Iterable[Interval]) -> list[list[Any]]:
    """Intervals as the cells of :data:`ENERGY_CSV_COLUMNS`."""
    return [
        [
            interval.start.isoformat(),
            interval.end.isoformat(),
            *(_cell(interval.values[name]) for name in ENERGY_CSV_COLUMNS[2:]),
        ]
        for interval in listed
    ]


def attachment(filename: str) -> str:
    """``Content-Disposition`` of a download; the name is made of safe characters only."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in filename)
    return f'attachment; filename="{safe}"'
