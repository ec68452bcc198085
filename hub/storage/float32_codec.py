"""Float32 stand-ins: TimescaleDB keeps a short decimal as the float32 it came from.

Why. Most registers hold at most seven significant digits: a float32 (an Eastron
meter's 229.6281 V), or an integer with a decimal scale (a SunSpec inverter's 229.7
V). The agent sends such a value as its shortest decimal (docs/protocol.md, "A
reading"), and the hub parses it into a double whose 29 lowest mantissa bits are the
noise of converting a decimal to binary. TimescaleDB compresses a ``double
precision`` column by XOR-ing each value with the one before (Gorilla): those noise
bits differ from reading to reading and cost about as much as the value itself. The
float32 nearest to the decimal (229.62809753417969) has them all zero.

What. On TimescaleDB the writer stores a field ``x`` as the float32 nearest to it,
widened back to a double, when PostgreSQL's own shortest text of that float32 reads
back as exactly ``x``, and sets the field's bit in the row's ``float32_mask``. Reading
a row turns a marked field back into that text's value, which is ``x`` again. Both
directions are the same server conversions (``float8 -> float4``, ``float4out``,
``float8in``), so the round trip is exact by construction, whatever the value: one
that does not survive it (``229.62840270996094``, eleven digits) is stored as it came,
unmarked. ``float4out`` gives the shortest exact text only when ``extra_float_digits``
is positive (PostgreSQL 12 and later, "Floating-Point Types"); the storage pins it on
its connections (:data:`SESSION_SETTINGS`).

What it changes. SQL aggregates (bucket averages, the minute rollup) read the stored
float32, at most half a float32 unit (6e-8 relative) from the decimal: below the
resolution a bucket's value is rounded to (hub/storage/columns.py, ``decimals``).
Counters are left out: the energy of an interval is the difference of two counter
values, and a counter's float32 can be several Wh from its decimal (123456780 Wh
is the float32 123456784). Values outside float32's range are left as they are
(the cast would fail).

This module only builds SQL; hub/storage/postgres.py runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from hub.storage.columns import FIELD_COLUMNS, ColumnKind, FieldColumn

MASK_COLUMN: Final = "float32_mask"
# ``float4out`` writes the shortest text that reads back as the same float4 only when
# extra_float_digits > 0 (the default, 1); a role or database may set it otherwise.
SESSION_SETTINGS: Final = {"extra_float_digits": "1"}

# The fields stored as stand-ins, in bit order. The bits are on disk: a field added
# to the protocol later must take a new bit at the end, never shift these
# (tests/hub/storage/test_float32_codec.py keeps the list).
CODEC_COLUMNS: Final = tuple(
    c
    for c in FIELD_COLUMNS
    if c.kind is ColumnKind.NUMBER_LIST or (c.kind is ColumnKind.NUMBER and not c.cumulative)
)
if len(CODEC_COLUMNS) > 63:  # one bigint
    raise TypeError("more fields than float32_mask has bits")
CODEC_BITS: Final = {c.name: 1 << bit for bit, c in enumerate(CODEC_COLUMNS)}

# float8 -> float4 fails on overflow and on a non-zero value that would become zero;
# inside these bounds it never does (float4 spans 1.2e-38 to 3.4e38).
_SMALLEST: Final = "1e-37"
_LARGEST: Final = "1e37"


def _fits(value: str) -> str:
    return f"({value} = 0 OR abs({value}) BETWEEN {_SMALLEST} AND {_LARGEST})"


def survives(column: FieldColumn, value: str) -> str:
    """SQL: whether ``value`` (an expression of the column's type) reads back from its float32.

    Never NULL: a NULL value, an empty list and a value out of float4's range are
    ``false``. The range test comes first in its own ``CASE``, so the cast never
    sees a value it would fail on.
    """
    exact = f"{_widened(column, value)} = {value}"
    if column.kind is ColumnKind.NUMBER_LIST:
        return (
            f"CASE WHEN {value} IS NULL THEN false "
            f"WHEN coalesce((SELECT bool_and({_fits('e')}) FROM unnest({value}) e), false) "
            f"THEN {exact} ELSE false END"
        )
    return f"CASE WHEN {_fits(value)} THEN {exact} ELSE false END"


def _narrowed(column: FieldColumn, value: str) -> str:
    if column.kind is ColumnKind.NUMBER_LIST:
        return f"{value}::float4[]::float8[]"
    return f"{value}::float4::float8"


def _widened(column: FieldColumn, value: str) -> str:
    if column.kind is ColumnKind.NUMBER_LIST:
        return f"{value}::float4[]::text::float8[]"
    return f"{value}::float4::text::float8"


def encoding_select(columns: Sequence[str], values: Sequence[str], source: str) -> str:
    """``SELECT`` of the rows of ``source``, fields as stand-ins, ``float32_mask`` last.

    ``columns`` are the table's column names and ``values`` the expression giving
    each from ``source``. Each field's test runs once per row, in a lateral
    subquery that ``OFFSET 0`` keeps from being inlined (inlined, the planner would
    copy the test into both the value and the mask).
    """
    tests, selected, bits = [], [], []
    for name, value in zip(columns, values, strict=True):
        bit = CODEC_BITS.get(name)
        if bit is None:
            selected.append(value)
            continue
        column = CODEC_COLUMNS[bit.bit_length() - 1]
        test = f"f32.{name}"
        tests.append(f"{survives(column, value)} AS {name}")
        selected.append(f"CASE WHEN {test} THEN {_narrowed(column, value)} ELSE {value} END")
        bits.append(f"CASE WHEN {test} THEN {bit}::int8 ELSE 0::int8 END")
    selected.append(" | ".join(bits))
    return (
        f"SELECT {', '.join(selected)} FROM {source} "
        f"CROSS JOIN LATERAL (SELECT {', '.join(tests)} OFFSET 0) f32"
    )


def decoding_list(columns: Sequence[str]) -> str:
    """A ``SELECT`` list of ``columns`` as they came: marked fields turned back into decimals.

    A row stored without stand-ins (plain PostgreSQL, or before schema version 6)
    has a NULL mask and is read as it is.
    """
    selected = []
    for name in columns:
        bit = CODEC_BITS.get(name)
        if bit is None:
            selected.append(name)
            continue
        column = CODEC_COLUMNS[bit.bit_length() - 1]
        selected.append(
            f"CASE WHEN {MASK_COLUMN} & {bit} <> 0 THEN {_widened(column, name)} "
            f"ELSE {name} END AS {name}"
        )
    return ", ".join(selected)
