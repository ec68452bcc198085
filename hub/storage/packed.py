"""Numbers packed as decimal digits, four bits each: SQLite's compact ``extra`` and phase lists.

Pure logic. A reading's ``extra`` is a map of names to numbers (docs/protocol.md,
"A reading"); its names repeat, reading after reading, and were two thirds of a
stored row (docs/benchmarks.md, "Storage size"). SQLite keeps each list of names
once (hub/storage/sqlite_values.py) and the row holds :func:`pack_extra`'s blob:
the list's id, then the values.

The values are written as the shortest decimal that reads back as the same
double (what ``orjson`` writes, https://github.com/ijl/orjson#float: "the same
as the Python repr"), comma-separated, with the ``.0`` of whole numbers left out,
and each of those characters, one of ``0-9 . - , e +``, takes half a byte. That
is lossless for every finite double, costs a register's value its decimal digits
only (``3.316`` is three bytes with its comma, ``0`` one), and every step is one
C call over the whole list (about 2 us for 60 values here), where a loop over
the values in Python would cost the writer several times that.

Every number comes back as a ``float``: ``extra`` values and phase values are
floats on the wire (telemetry/reading.py). What JSON cannot carry as a number
(NaN, infinities: the protocol refuses them), and anything not a number, is
refused with ``ValueError`` rather than stored as something else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import orjson

__all__ = [
    "pack_extra",
    "pack_numbers",
    "read_varint",
    "unpack_extra",
    "unpack_numbers",
    "varint",
]

_TEXT: Final = b"0123456789.-,e+"
_NIBBLES: Final = b"0123456789abcde"
_PAD: Final = b"f"
_BAD: Final = b"x"
# Every byte that is not one of _TEXT becomes _BAD, which fromhex refuses below.
_TO_HEX: Final = bytes(
    _NIBBLES[_TEXT.index(byte)] if byte in _TEXT else _BAD[0] for byte in range(256)
)
_FROM_HEX: Final = bytes.maketrans(_NIBBLES, _TEXT)


def pack_numbers(values: Sequence[float]) -> bytes:
    """``values`` as decimal text, half a byte per character (see the module docstring)."""
    if not values:
        return b""
    try:
        text = orjson.dumps(values)  # b"[28.15,53.0,-0.0]"; NaN would be null
    except orjson.JSONEncodeError as err:
        raise ValueError(f"not numbers: {err}") from err
    # "-0.0" becomes "-0e0", which stays a float with its sign; then "53.0" becomes "53".
    body = (text[1:-1] + b",").replace(b"-0.0,", b"-0e0,").replace(b".0,", b",")
    digits = body[:-1].translate(_TO_HEX)
    if _BAD in digits:
        raise ValueError(f"not finite numbers: {text[:80].decode(errors='replace')}")
    if len(digits) % 2:
        digits += _PAD
    return bytes.fromhex(digits.decode("ascii"))


def unpack_numbers(packed: bytes) -> list[float]:
    """The numbers :func:`pack_numbers` packed, as floats."""
    if not packed:
        return []
    text = packed.hex().encode("ascii").translate(_FROM_HEX, _PAD)
    try:
        values = orjson.loads(b"[" + text + b"]")
    except orjson.JSONDecodeError as err:
        raise ValueError(f"not packed numbers: {packed[:40].hex()}") from err
    return list(map(float, values))


def varint(value: int) -> bytes:
    """``value`` >= 0 in 7-bit groups, low group first, the high bit marking more to come."""
    if value < 0:
        raise ValueError(f"a varint is >= 0, not {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes, start: int = 0) -> tuple[int, int]:
    """(the varint at ``start``, the offset after it)."""
    value = 0
    shift = 0
    for index in range(start, len(data)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise ValueError(f"a varint runs past the end: {data[start : start + 10].hex()}")


def pack_extra(names_id: int, values: Sequence[float]) -> bytes:
    """The id of ``extra``'s list of names, then its values in that order."""
    return varint(names_id) + pack_numbers(values)


def unpack_extra(blob: bytes) -> tuple[int, list[float]]:
    """(the id of the list of names, the values) of :func:`pack_extra`'s blob."""
    names_id, offset = read_varint(blob)
    return names_id, unpack_numbers(blob[offset:])
