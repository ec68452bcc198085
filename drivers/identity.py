"""A device's identity: its maker, model, serial number and firmware, as it reports them.

Read once after a bus opens (edge/poller.py), from the registers its vendor
documents: each profile's ``identity`` map cites them (docs/devices.md, "Device
identity"). A SunSpec device reports all four in its common model 1
(:func:`drivers.profiles.sunspec.identity_map`); others report some, and the
catalogue's vendor name stands in for a maker the device does not report.

An identity map is an ordinary :class:`~drivers.profile.RegisterMap` whose points
feed ``extra.<field>`` (``extra.serial_number``): the planner and the transport
read it as any map, within the device's read limits and pacing. Decoding is pure
(:func:`decode_identity`, on a register image) and strict: a text is two ASCII
characters per register, high byte first, trimmed of NULs and spaces at both
ends; anything else (a control character, a byte above 0x7E, a register filled
with 0xFFFF) is garbage and gives no value, as does an empty text. A number (a
serial number some meters keep in a U32) is shown in decimal.

Some vendors report the model only as a code (Sungrow's device type code at
5000, SMA's device type at 30053): the profile keeps its document's table of
codes as data (a ``Mapping`` beside its map, citing the table) and reads the
register with :func:`code_point`. A code the table names shows as that name
(:func:`model_name`); any other shows as the number, in decimal, never a guess. A
code the table names ``""`` is the document's "not available" and gives no value.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Final

from drivers.planner import Hole
from drivers.profile import Point, RegisterImage, RegisterMap, Section, Target
from drivers.registers import DataType, RegisterType, WordOrder, decode_value, register_count
from telemetry.health import MAX_IDENTITY_CHARS

__all__ = [
    "MAX_IDENTITY_CHARS",
    "DeviceIdentity",
    "IdentityField",
    "code_point",
    "decode_identity",
    "identity_map",
    "identity_number",
    "identity_text",
    "model_name",
    "number_point",
    "plain_text",
    "text_point",
]

# Printable ASCII: what the health frame accepts (telemetry/health.py), at most
# MAX_IDENTITY_CHARS (SunSpec's Mn, Md and SN are 16 registers: 32 characters).
_PRINTABLE: Final = range(0x20, 0x7F)


class IdentityField(enum.StrEnum):
    """What a device may say about itself (the names of the wire's ``identity``)."""

    MANUFACTURER = "manufacturer"
    MODEL = "model"
    SERIAL_NUMBER = "serial_number"
    FIRMWARE_VERSION = "firmware_version"


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What is known of a device's identity; an empty text is "not reported"."""

    manufacturer: str = ""
    model: str = ""
    serial_number: str = ""
    firmware_version: str = ""

    @property
    def known(self) -> bool:
        return any(self.as_dict().values())

    def as_dict(self) -> dict[str, str]:
        """The fields the device reported (none empty)."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name))}

    def with_manufacturer(self, vendor: str) -> DeviceIdentity:
        """This identity, with ``vendor`` as its maker when the device reported none
        (a vendor name outside printable ASCII, from a user's TOML map, is left out)."""
        maker = plain_text(vendor)
        if self.manufacturer or maker is None:
            return self
        return DeviceIdentity(maker, self.model, self.serial_number, self.firmware_version)


def plain_text(text: str) -> str | None:
    """``text`` trimmed of NULs and spaces at both ends and cut to MAX_IDENTITY_CHARS;
    None when empty or when it holds anything but printable ASCII (a NUL inside)."""
    text = text.strip("\x00 ")
    if not text or any(ord(char) not in _PRINTABLE for char in text):
        return None
    return text[:MAX_IDENTITY_CHARS].rstrip(" ")


def identity_text(words: Sequence[int]) -> str | None:
    """The text in ``words`` (two ASCII characters each, high byte first), or None.

    NULs and spaces are trimmed at both ends (devices pad either way); a text that
    is empty, or holds a NUL between characters or any byte outside printable
    ASCII, is not an identity.
    """
    raw = b"".join((word & 0xFFFF).to_bytes(2, "big") for word in words)
    return plain_text(raw.decode("latin-1"))


def identity_number(data_type: DataType, words: Sequence[int], order: WordOrder) -> str | None:
    """An unsigned number in ``words`` in decimal; 0 and all-ones (unset) give None."""
    if all(word == 0xFFFF for word in words):
        return None
    value = decode_value(data_type, tuple(words), order)
    if not isinstance(value, int) or value <= 0:
        return None
    return str(value)


def model_name(names: Mapping[int, str], code: int) -> str:
    """The name ``names`` gives ``code``, or the code itself in decimal when it gives none."""
    return names.get(code, str(code))


def text_point(
    field: IdentityField, register_type: RegisterType, address: int, length: int
) -> Point:
    """A text of ``length`` registers at ``address`` (the wire address) feeding ``field``."""
    return Point(
        name=field.value,
        address=address,
        register_type=register_type,
        data_type=DataType.STRING,
        target=Target(Section.EXTRA, field.value),
        length=length,
    )


def number_point(
    field: IdentityField,
    register_type: RegisterType,
    address: int,
    data_type: DataType,
    word_order: WordOrder = WordOrder.ABCD,
) -> Point:
    """An unsigned number at ``address`` feeding ``field`` (shown in decimal)."""
    return Point(
        name=field.value,
        address=address,
        register_type=register_type,
        data_type=data_type,
        target=Target(Section.EXTRA, field.value),
        word_order=word_order,
    )


def code_point(
    field: IdentityField,
    register_type: RegisterType,
    address: int,
    data_type: DataType,
    names: Mapping[int, str],
) -> Point:
    """A code at ``address`` feeding ``field``, shown by the name ``names`` gives it."""
    number = number_point(field, register_type, address, data_type)
    return dataclasses.replace(number, states=tuple(sorted(names.items())))


def identity_map(
    name: str,
    source: str,
    points: Iterable[Point],
    *,
    max_count: int = 125,
    holes: tuple[Hole, ...] = (),
    byte_tables: tuple[int, ...] = (),
) -> RegisterMap:
    """The identity registers of a device, read with its own limits (``max_count``, holes)."""
    points = tuple(points)
    for point in points:
        if point.target is None or point.target.section is not Section.EXTRA:
            raise ValueError(f"{name}: identity point {point.name!r} must feed extra.<field>")
        IdentityField(point.target.field)  # a ValueError names a field we do not know
    return RegisterMap(
        name=f"{name}.identity",
        source=source,
        points=points,
        max_count=max_count,
        holes=holes,
        byte_tables=byte_tables,
    )


def _words(image: RegisterImage, point: Point) -> tuple[int, ...] | None:
    table: Mapping[int, int] = image.get(point.register_type, {})
    count = register_count(point.data_type, point.length)
    if any(point.address + i not in table for i in range(count)):
        return None
    return tuple(table[point.address + i] for i in range(count))


def decode_identity(reg_map: RegisterMap, image: RegisterImage) -> DeviceIdentity:
    """The identity an identity map's registers hold; garbage and gaps are left out."""
    found: dict[str, str] = {}
    for point in reg_map.points:
        if point.target is None:
            continue
        words = _words(image, point)
        if words is None:
            continue
        if point.data_type is DataType.STRING:
            value = identity_text(words)
        else:
            value = identity_number(point.data_type, words, point.word_order)
            if value is not None and point.states:
                value = plain_text(model_name(dict(point.states), int(value)))
        if value is not None:
            found[IdentityField(point.target.field).value] = value
    return DeviceIdentity(**found)
