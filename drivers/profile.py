"""A register map as data, used both ways: decode (drivers) and encode (simulators).

A :class:`RegisterMap` lists :class:`Point` s: where a value lives (table, address,
data type, word order), how raw becomes physical (``value = raw * scale *
10**sf + offset``, ``sf`` read from a SunSpec scale-factor point when named) and
which protocol field it feeds (:class:`Target`: section, field and, for the
per-phase lists, an index). Signs are converted by a negative ``scale``: the
protocol's conventions (docs/protocol.md, "A reading") hold after decoding.

One map, two directions: :func:`decode_map` turns registers into protocol
sections, :func:`encode_map` turns protocol sections into registers. Tests also
decode register images typed by hand from the vendors' tables, so a mistake that
both directions share cannot hide.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

from drivers.errors import ProfileError
from drivers.planner import Hole, ReadRequest, Span, minimal_reads, plan_reads
from drivers.registers import (
    DataType,
    EncodingError,
    RegisterType,
    WordOrder,
    canonical_words,
    decode_value,
    encode_value,
    is_not_implemented,
    not_implemented_words,
    register_count,
)

Value = float | str | list[float]
Sections = dict[str, dict[str, Value]]
# Registers by table and address: what a read plan fetched, or what a simulator serves.
RegisterImage = dict[RegisterType, dict[int, int]]


class Section(enum.Enum):
    """The protocol's sections (docs/protocol.md, "A reading"), and ``extra``."""

    INVERTER = "inverter"
    GRID = "grid"
    SOLAR = "solar"
    BATTERY = "battery"
    EXTRA = "extra"


@dataclass(frozen=True)
class Target:
    """The protocol field a point feeds: ``grid.phase_voltage_v[0]``, ``extra.x``."""

    section: Section
    field: str
    index: int | None = None

    def __str__(self) -> str:
        suffix = "" if self.index is None else f"[{self.index}]"
        return f"{self.section.value}.{self.field}{suffix}"


def target(path: str) -> Target:
    """Parse ``"section.field"`` or ``"section.field[i]"``."""
    section_name, _, rest = path.partition(".")
    try:
        section = Section(section_name)
    except ValueError as err:
        names = ", ".join(s.value for s in Section)
        raise ValueError(f"unknown section {section_name!r} (one of {names})") from err
    name, bracket, index_text = rest.partition("[")
    if not name.isidentifier():
        raise ValueError(f"bad field name {name!r}")
    index = None
    if bracket:
        if not index_text.endswith("]") or not index_text[:-1].isdigit():
            raise ValueError(f"bad index in {path!r}")
        index = int(index_text[:-1])
    return Target(section, name, index)


@dataclass(frozen=True)
class Point:
    """One value in a device's register map."""

    name: str
    address: int
    register_type: RegisterType
    data_type: DataType
    target: Target | None = None
    word_order: WordOrder = WordOrder.ABCD
    scale: float = 1.0
    offset: float = 0.0
    scale_factor: str | None = None  # name of a SUNSSF point of the same map
    length: int = 0  # registers, for strings
    states: tuple[tuple[int, str], ...] = ()  # enum code -> protocol state name
    constant: int | float | str | None = None  # what the encoder writes when no target
    # A bit field inside an integer register: value = (raw >> shift) & mask.
    shift: int = 0
    mask: int | None = None

    @property
    def count(self) -> int:
        return register_count(self.data_type, self.length)

    @property
    def span(self) -> Span:
        return Span(self.register_type, self.address, self.count)


@dataclass(frozen=True)
class PointBuilder:
    """How one vendor family writes its points: every family's map builds them with one.

    A family fixes what all its points share: the table they are read from, the
    word order of its multi-register values (a single register reads alike in
    ABCD and CDAB), the scale most of them have, how its document numbers the
    registers (``locate``: the number printed -> the wire address, e.g. Eastron's
    30001-based numbers) and whether the document gives a divisor rather than a
    factor (Victron's "scalefactor": value = raw / scalefactor). Each point then
    says only what is its own, in one order: name, address, data type, the
    protocol field it feeds (None: encoded as ``constant``, or read and unused),
    scale.
    """

    register_type: RegisterType
    word_order: WordOrder = WordOrder.ABCD
    scale: float = 1.0
    locate: Callable[[int], int] | None = field(default=None, compare=False)
    divisor: bool = False

    def __call__(
        self,
        name: str,
        address: int,
        data_type: DataType,
        path: str | None,
        scale: float | None = None,
        *,
        offset: float = 0.0,
        states: tuple[tuple[int, str], ...] = (),
        constant: int | float | str | None = None,
        shift: int = 0,
        mask: int | None = None,
        length: int = 0,
    ) -> Point:
        given = self.scale if scale is None else scale
        return Point(
            name=name,
            address=address if self.locate is None else self.locate(address),
            register_type=self.register_type,
            data_type=data_type,
            target=None if path is None else target(path),
            word_order=self.word_order,
            scale=1.0 / given if self.divisor else given,
            offset=offset,
            length=length,
            states=states,
            constant=constant,
            shift=shift,
            mask=mask,
        )


@dataclass(frozen=True)
class RegisterMap:
    """A device's points, its read limits and its source document.

    ``holes`` are the address ranges the device refuses to read (exception 02 to
    any read touching them), each cited where the map is defined: no plan reads
    them, and the simulators refuse them too. ``max_gap`` is a cost choice only:
    how many unused registers a request may carry to save a round trip.
    """

    name: str
    source: str
    points: tuple[Point, ...]
    max_count: int = 125
    max_gap: int = 16
    holes: tuple[Hole, ...] = ()
    # SunSpec devices mark unimplemented values; other devices' 0xFFFF can be real.
    na_markers: bool = False
    # A vendor's own "not available" words per data type, in ABCD order (Sungrow
    # answers 0xFFFF for an unavailable U16, 0x7FFF for an S16): decoded as absent.
    unavailable: tuple[tuple[DataType, tuple[int, ...]], ...] = ()
    # Protocol fields computed from decoded ones (e.g. battery power from V and I).
    derive: Callable[[Sections], None] | None = field(default=None, compare=False)
    # Tables whose addresses count bytes, not registers, from each base given here (the
    # JK-PB BMS: "0x1200 + byte offset"). The map's addresses stay register (word)
    # addresses, ``base + offset / 2``, so plans and images work as for any device; a
    # request goes on the wire at :meth:`wire_address` (``base + offset``) and its
    # answer holds ``count`` consecutive words from there.
    byte_tables: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        names = [p.name for p in self.points]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ProfileError(name, "defined twice", source=self.name)
            seen.add(name)
        for point in self.points:
            if point.scale_factor is not None and point.scale_factor not in seen:
                raise ProfileError(
                    point.name, f"scale factor {point.scale_factor!r} is not a point"
                )
            for hole in self.holes:
                if hole.touches(point.register_type, point.address, point.count):
                    raise ProfileError(
                        point.name, f"lies in the unreadable range {hole}", source=self.name
                    )

    def wire_address(self, address: int) -> int:
        """The address a read of register ``address`` is sent to (see ``byte_tables``)."""
        return wire_address(self.byte_tables, address)

    @cached_property
    def by_name(self) -> Mapping[str, Point]:
        return {p.name: p for p in self.points}

    @cached_property
    def needed(self) -> tuple[Point, ...]:
        """Points a poll must read: those with a target and the scale factors they use."""
        sfs = {p.scale_factor for p in self.points if p.target is not None and p.scale_factor}
        return tuple(p for p in self.points if p.target is not None or p.name in sfs)

    @cached_property
    def plan(self) -> tuple[ReadRequest, ...]:
        """The fewest requests that read every needed point (see :mod:`drivers.planner`)."""
        return plan_reads(
            (p.span for p in self.needed),
            max_count=self.max_count,
            max_gap=self.max_gap,
            holes=self.holes,
        )

    @cached_property
    def minimal_plan(self) -> tuple[ReadRequest, ...]:
        """The floor of :attr:`plan`: the fewest requests the device's limits allow.

        Every gap bridged but those touching a hole (:func:`drivers.planner.minimal_reads`);
        benchmarks and tests compare :attr:`plan` with it.
        """
        return minimal_reads(
            (p.span for p in self.needed), max_count=self.max_count, holes=self.holes
        )


def _table_base(bases: tuple[int, ...], address: int) -> int | None:
    below = [base for base in bases if base <= address]
    return max(below) if below else None


def wire_address(byte_tables: tuple[int, ...], address: int) -> int:
    """Register ``address`` (``base + offset / 2``) as a byte-counting device is asked for it."""
    base = _table_base(byte_tables, address)
    return address if base is None else base + 2 * (address - base)


def register_address(byte_tables: tuple[int, ...], wire: int) -> tuple[int, int]:
    """The inverse of :func:`wire_address`: (register, byte within it: 0 high, 1 low)."""
    base = _table_base(byte_tables, wire)
    if base is None:
        return wire, 0
    offset = wire - base
    return base + offset // 2, offset % 2


class MissingRegisters(KeyError):
    """A decode was given an image without registers a point needs."""


def _words(image: RegisterImage, point: Point) -> tuple[int, ...]:
    table = image.get(point.register_type, {})
    try:
        return tuple(table[point.address + i] for i in range(point.count))
    except KeyError as err:
        raise MissingRegisters(f"{point.name}: register {err.args[0]} was not read") from err


def _scale_exponent(reg_map: RegisterMap, point: Point, image: RegisterImage) -> int | None:
    """The SunSpec sf of ``point``: 0 if it has none, None if the sf is not implemented."""
    if point.scale_factor is None:
        return 0
    sf_point = reg_map.by_name[point.scale_factor]
    words = _words(image, sf_point)
    if is_not_implemented(DataType.SUNSSF, words, sf_point.word_order):
        return None
    exponent = decode_value(DataType.SUNSSF, words, sf_point.word_order)
    assert isinstance(exponent, int)
    # SunSpec limits scale factors to -10..10; anything else is a broken image.
    return exponent if -10 <= exponent <= 10 else None


def _tidy(value: float) -> float:
    """Drop binary noise of decimal scaling (231.20000000000002 -> 231.2)."""
    return float(f"{value:.10g}") if math.isfinite(value) else value


def decode_point(reg_map: RegisterMap, point: Point, image: RegisterImage) -> Value | None:
    """The physical value of ``point``, or None when the device does not implement it.

    "Not implemented" (SunSpec markers, NaN, an unimplemented scale factor) is an
    absence, not a failure: the field is left out of the reading.
    """
    words = _words(image, point)
    if reg_map.na_markers and is_not_implemented(point.data_type, words, point.word_order):
        return None
    if reg_map.unavailable and canonical_words(words, point.word_order) == dict(
        reg_map.unavailable
    ).get(point.data_type):
        return None
    raw = decode_value(point.data_type, words, point.word_order)
    if isinstance(raw, str):
        return raw
    if point.mask is not None and isinstance(raw, int):
        raw = (raw >> point.shift) & point.mask
    if point.states:
        return dict(point.states).get(int(raw), f"code_{int(raw)}")
    if isinstance(raw, float) and not math.isfinite(raw):
        return None
    exponent = _scale_exponent(reg_map, point, image)
    if exponent is None:
        return None
    value = raw * point.scale * (10.0**exponent) + point.offset
    return _tidy(float(value))


def decode_map(reg_map: RegisterMap, image: RegisterImage) -> Sections:
    """Protocol sections from a register image; only points with a target appear."""
    sections: Sections = {}
    lists: dict[tuple[str, str], dict[int, float]] = {}
    for point in reg_map.points:
        if point.target is None:
            continue
        value = decode_point(reg_map, point, image)
        if value is None:
            continue
        tgt = point.target
        if tgt.index is not None:
            if isinstance(value, float):
                lists.setdefault((tgt.section.value, tgt.field), {})[tgt.index] = value
            continue
        sections.setdefault(tgt.section.value, {})[tgt.field] = value
    for (section, name), items in lists.items():
        # A per-phase list is only meaningful whole: [L1, L2, L3] with no hole.
        if sorted(items) == list(range(len(items))):
            sections.setdefault(section, {})[name] = [items[i] for i in range(len(items))]
    if reg_map.derive is not None:
        reg_map.derive(sections)
    return {name: values for name, values in sections.items() if values}


_INT_RANGES: Final = {
    DataType.INT16: (-0x8000, 0x7FFF),
    DataType.SUNSSF: (-10, 10),
    DataType.UINT16: (0, 0xFFFF),
    DataType.ENUM16: (0, 0xFFFF),
    DataType.BITFIELD16: (0, 0xFFFF),
    DataType.INT32: (-0x8000_0000, 0x7FFF_FFFF),
    DataType.UINT32: (0, 0xFFFF_FFFF),
    DataType.ACC32: (0, 0xFFFF_FFFF),
    DataType.BITFIELD32: (0, 0xFFFF_FFFF),
    DataType.BIT: (0, 1),
}


def _lookup(sections: Mapping[str, Mapping[str, object]], tgt: Target) -> object:
    value = sections.get(tgt.section.value, {}).get(tgt.field)
    if tgt.index is not None:
        if isinstance(value, list | tuple) and tgt.index < len(value):
            return value[tgt.index]
        return None
    return value


def _raw_for(
    reg_map: RegisterMap, point: Point, value: object, exponents: Mapping[str, int]
) -> int | float | str:
    if point.data_type is DataType.STRING:
        return str(value)
    if point.states:
        codes = {name: code for code, name in point.states}
        if value not in codes:
            raise EncodingError(point.data_type, value, f"not one of {sorted(codes)}")
        code = codes[str(value)]
        # A state in a bit field (a mode in a register's high byte) goes back where it was read.
        return code if point.mask is None else (code & point.mask) << point.shift
    if not isinstance(value, int | float):
        raise EncodingError(point.data_type, value, "expected a number")
    exponent = exponents.get(point.scale_factor, 0) if point.scale_factor else 0
    raw = (float(value) - point.offset) / (point.scale * (10.0**exponent))
    if point.data_type is DataType.FLOAT32:
        return raw
    if point.mask is not None:
        return (round(raw) & point.mask) << point.shift
    low, high = _INT_RANGES[point.data_type]
    # Saturate like a real device's counter display; never wrap into a wrong sign.
    return int(min(max(round(raw), low), high))


def encode_map(
    reg_map: RegisterMap,
    sections: Mapping[str, Mapping[str, object]],
    into: RegisterImage | None = None,
) -> RegisterImage:
    """Registers holding ``sections`` (and every point's constant) in ``reg_map``'s layout.

    A target missing from ``sections`` is written as "not implemented" on a
    SunSpec map and left untouched (zero on a fresh image) elsewhere.
    """
    image: RegisterImage = into if into is not None else {}
    exponents: dict[str, int] = {}
    for point in reg_map.points:
        if point.data_type is DataType.SUNSSF and isinstance(point.constant, int):
            exponents[point.name] = point.constant
    for point in reg_map.points:
        table = image.setdefault(point.register_type, {})
        if point.target is None:
            if point.constant is None:
                words = (
                    not_implemented_words(point.data_type, point.word_order, point.length)
                    if reg_map.na_markers
                    else (0,) * point.count
                )
            else:
                words = encode_value(
                    point.data_type, point.constant, point.word_order, point.length
                )
        else:
            value = _lookup(sections, point.target)
            if value is None:
                if not reg_map.na_markers:
                    for i in range(point.count):
                        table.setdefault(point.address + i, 0)
                    continue
                words = not_implemented_words(point.data_type, point.word_order, point.length)
            else:
                raw = _raw_for(reg_map, point, value, exponents)
                words = encode_value(point.data_type, raw, point.word_order, point.length)
        for i, word in enumerate(words):
            table[point.address + i] = word
    return image
