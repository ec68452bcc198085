"""Register data types: 16-bit words to numbers and back, with no I/O.

Modbus moves 16-bit registers (Modbus Application Protocol V1.1b3, 4.2: "big-Endian
representation" inside a register). Anything wider spans several registers, and
vendors disagree on the order of those words, so the order is part of every point:

- ``ABCD``: high word first (SunSpec, Eastron SDM, most devices);
- ``CDAB``: low word first (EPEver Tracer protocol V2.5: "32-bit data uses two
  registers, L and H", L at the lower address);
- ``BADC`` / ``DCBA``: the same with the bytes of each word swapped (some gateways).

SunSpec marks a value the device does not implement with a reserved pattern
(SunSpec Information Model Specification 1.0, 4.1 "Unimplemented Registers"):
``0x8000`` for int16 and sunssf, ``0xFFFF`` for uint16 and enum16, ``0x80000000``
for int32, ``0xFFFFFFFF`` for uint32, ``0`` for acc32, NaN for float32 and all-zero
registers for strings. :func:`is_not_implemented` recognises them; a float NaN or
infinity is never a reading, whatever the profile.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence
from typing import Final


class RegisterType(enum.Enum):
    """The four Modbus data tables (Modbus Application Protocol V1.1b3, 4.3)."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def function_code(self) -> int:
        """The read function code of the table (MAP V1.1b3, 6.1-6.4)."""
        return _READ_FUNCTION[self]

    @property
    def is_bit(self) -> bool:
        return self in (RegisterType.COIL, RegisterType.DISCRETE)

    @property
    def max_count(self) -> int:
        """The most items one read may ask for (MAP V1.1b3: 2000 bits, 125 registers)."""
        return 2000 if self.is_bit else 125


_READ_FUNCTION: Final = {
    RegisterType.COIL: 0x01,
    RegisterType.DISCRETE: 0x02,
    RegisterType.HOLDING: 0x03,
    RegisterType.INPUT: 0x04,
}


class DataType(enum.Enum):
    """How a point's registers hold its value."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    ACC32 = "acc32"  # SunSpec accumulator: uint32 that wraps; 0 means not implemented
    SUNSSF = "sunssf"  # SunSpec scale factor: int16 power of ten
    ENUM16 = "enum16"
    BITFIELD16 = "bitfield16"
    BITFIELD32 = "bitfield32"
    STRING = "string"  # two ASCII characters per register, NUL padded
    BIT = "bit"  # one coil or discrete input

    @property
    def is_numeric(self) -> bool:
        return self is not DataType.STRING


# Registers per value; strings carry their own length.
_WIDTH: Final = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.SUNSSF: 1,
    DataType.ENUM16: 1,
    DataType.BITFIELD16: 1,
    DataType.BIT: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.ACC32: 2,
    DataType.BITFIELD32: 2,
    DataType.FLOAT32: 2,
}

_STRUCT: Final = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.SUNSSF: ">h",
    DataType.ENUM16: ">H",
    DataType.BITFIELD16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.ACC32: ">I",
    DataType.BITFIELD32: ">I",
    DataType.FLOAT32: ">f",
}

# SunSpec Information Model Specification 1.0, 4.1: raw register patterns.
NOT_IMPLEMENTED: Final[dict[DataType, tuple[int, ...]]] = {
    DataType.INT16: (0x8000,),
    DataType.SUNSSF: (0x8000,),
    DataType.UINT16: (0xFFFF,),
    DataType.ENUM16: (0xFFFF,),
    DataType.BITFIELD16: (0xFFFF,),
    DataType.INT32: (0x8000, 0x0000),
    DataType.UINT32: (0xFFFF, 0xFFFF),
    DataType.BITFIELD32: (0xFFFF, 0xFFFF),
    DataType.ACC32: (0x0000, 0x0000),
    DataType.FLOAT32: (0x7FC0, 0x0000),
}


class WordOrder(enum.Enum):
    """Order of the bytes of a multi-register value, A the most significant byte."""

    ABCD = "ABCD"  # high word first, big-endian words
    CDAB = "CDAB"  # low word first, big-endian words
    BADC = "BADC"  # high word first, byte-swapped words
    DCBA = "DCBA"  # low word first, byte-swapped words


class EncodingError(ValueError):
    """A value cannot be represented in its data type (the simulator's side)."""

    def __init__(self, data_type: DataType, value: object, reason: str) -> None:
        super().__init__(f"{value!r} does not fit {data_type.value}: {reason}")
        self.data_type = data_type
        self.value = value


def register_count(data_type: DataType, length: int = 0) -> int:
    """How many registers a value of ``data_type`` spans (``length`` for strings)."""
    if data_type is DataType.STRING:
        if length <= 0:
            raise ValueError("a string point needs a length in registers")
        return length
    return _WIDTH[data_type]


def _to_big_endian(words: Sequence[int], order: WordOrder) -> bytes:
    """Reorder the registers of a 2-word value into plain big-endian bytes."""
    if order in (WordOrder.CDAB, WordOrder.DCBA):
        words = list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    if order in (WordOrder.BADC, WordOrder.DCBA):
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    return raw


def _from_big_endian(raw: bytes, order: WordOrder) -> tuple[int, ...]:
    if order in (WordOrder.BADC, WordOrder.DCBA):
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    if order in (WordOrder.CDAB, WordOrder.DCBA):
        words.reverse()
    return tuple(words)


def _check_words(words: Sequence[int]) -> None:
    for word in words:
        if not 0 <= word <= 0xFFFF:
            raise ValueError(f"a register holds 0..65535, not {word}")


def canonical_words(words: Sequence[int], order: WordOrder) -> tuple[int, ...]:
    """The registers of a value rearranged into ABCD order (for marker checks)."""
    if len(words) == 1:
        if order in (WordOrder.BADC, WordOrder.DCBA):
            return (((words[0] & 0xFF) << 8) | (words[0] >> 8),)
        return (words[0],)
    raw = _to_big_endian(words, order)
    return tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))


def is_not_implemented(data_type: DataType, words: Sequence[int], order: WordOrder) -> bool:
    """True when ``words`` hold SunSpec's "not implemented" pattern for the type."""
    if data_type is DataType.STRING:
        return all(w == 0 for w in words)
    if data_type is DataType.FLOAT32:
        value = decode_value(data_type, words, order)
        return isinstance(value, float) and math.isnan(value)
    return canonical_words(words, order) == NOT_IMPLEMENTED.get(data_type)


def decode_value(data_type: DataType, words: Sequence[int], order: WordOrder) -> int | float | str:
    """The value held by ``words`` (exactly as many as the type spans)."""
    _check_words(words)
    if data_type is DataType.STRING:
        raw = b"".join(w.to_bytes(2, "big") for w in words)
        return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").rstrip()
    if data_type is DataType.BIT:
        return 1 if words[0] else 0
    width = _WIDTH[data_type]
    if len(words) != width:
        raise ValueError(f"{data_type.value} spans {width} register(s), got {len(words)}")
    if width == 1:
        raw = canonical_words(words, order)[0].to_bytes(2, "big")
    else:
        raw = _to_big_endian(words, order)
    value: int | float = struct.unpack(_STRUCT[data_type], raw)[0]
    if data_type is DataType.FLOAT32:
        return float32_decimal(float(value))
    return value


# Nine significant digits tell any two float32 values apart (IEEE 754-2008, 5.12.2).
_FLOAT32_DIGITS: Final = 9


def float32_decimal(value: float) -> float:
    """The shortest decimal that is the same float32 as ``value`` (229.6284027 -> 229.6284).

    A float32 register holds about seven significant digits; widened to a double
    it shows binary noise beyond them (230.1999969482422 for 230.2). The shortest
    decimal rounding to the same float32 carries exactly the register's content,
    and is what the device meant. NaN and infinities are returned as they are.
    """
    if not math.isfinite(value):
        return value
    (target,) = struct.unpack(">f", struct.pack(">f", value))
    for digits in range(1, _FLOAT32_DIGITS):
        shorter = float(f"{value:.{digits}g}")
        try:
            if struct.unpack(">f", struct.pack(">f", shorter))[0] == target:
                return shorter
        except OverflowError:  # rounded up past the largest float32 (3.4028235e38)
            continue
    return float(f"{value:.{_FLOAT32_DIGITS}g}")


def encode_value(
    data_type: DataType, value: int | float | str, order: WordOrder, length: int = 0
) -> tuple[int, ...]:
    """The registers holding ``value``: the inverse of :func:`decode_value`.

    Integers must already be whole and in range (rounding is the caller's
    decision, made where the scale is known).
    """
    if data_type is DataType.STRING:
        if not isinstance(value, str):
            raise EncodingError(data_type, value, "expected text")
        raw = value.encode("ascii")
        size = register_count(data_type, length) * 2
        if len(raw) > size:
            raise EncodingError(data_type, value, f"longer than {size} characters")
        raw = raw.ljust(size, b"\x00")
        return tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, size, 2))
    if isinstance(value, str):
        raise EncodingError(data_type, value, "expected a number")
    if data_type is DataType.BIT:
        return (1 if value else 0,)
    if data_type is not DataType.FLOAT32:
        if isinstance(value, float) and not value.is_integer():
            raise EncodingError(data_type, value, "not a whole number")
        value = int(value)
    try:
        raw = struct.pack(_STRUCT[data_type], value)
    except struct.error as err:
        raise EncodingError(data_type, value, str(err)) from err
    if _WIDTH[data_type] == 1:
        word = int.from_bytes(raw, "big")
        return canonical_words((word,), order)
    return _from_big_endian(raw, order)


def not_implemented_words(
    data_type: DataType, order: WordOrder = WordOrder.ABCD, length: int = 0
) -> tuple[int, ...]:
    """The marker registers of ``data_type`` (what a SunSpec device sends), in ``order``."""
    if data_type is DataType.STRING:
        return (0,) * register_count(data_type, length)
    words = NOT_IMPLEMENTED[data_type]
    if len(words) == 1:
        return canonical_words(words, order)
    return _from_big_endian(b"".join(w.to_bytes(2, "big") for w in words), order)
