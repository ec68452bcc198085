"""What the device-family tests share: a bus to a simulated device, register images, words.

- :func:`served_bus`: the ``BusConfig`` that reaches a simulated device (or a
  whole simulated site) over loopback TCP or over its pseudo-terminal (RTU).
- :func:`plant_specs`: a site layout's devices serving one plant state.
- :func:`zero_image`: a hand-typed register image, zero wherever not typed.
- words as a document prints them: :func:`words32`, :func:`float_words`,
  :func:`text_words`, :func:`s16`.
- :func:`within_step`: a decoded float equal to what was encoded, within half a step.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol

from drivers.bus import Backend, BusConfig, BusType
from drivers.profile import RegisterImage
from drivers.registers import RegisterType
from simulation.layout import SiteLayout, encode_layout
from simulation.modbus_server import DeviceSpec
from simulation.plant import Plant


class Served(Protocol):
    """A simulated device or site once started: where its TCP port and its pty are."""

    @property
    def tcp_port(self) -> int: ...

    @property
    def rtu_path(self) -> str: ...


def served_bus(kind: str, server: Served, *, rtu_backend: Backend | None = None) -> BusConfig:
    """``kind``: "tcp", or "rtu" (pymodbus) / "rtu-minimalmodbus" on the server's pty.

    ``rtu_backend`` fixes the backend of an RTU bus whatever ``kind`` says (a family
    tested on one backend only). 115200 baud and a 2 s timeout: the tests must
    tolerate a loaded machine, and a simulated line has no baud rate of its own.
    """
    if kind == "tcp":
        return BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port, timeout_s=2.0)
    backend = rtu_backend or (
        Backend.MINIMALMODBUS if kind.endswith("minimalmodbus") else Backend.PYMODBUS
    )
    return BusConfig(
        "rs485",
        BusType.RTU,
        device=server.rtu_path,
        baudrate=115200,
        timeout_s=2.0,
        backend=backend,
    )


def plant_specs(
    layout: SiteLayout, start: datetime, seed: int = 2
) -> tuple[list[DeviceSpec], Mapping[str, Mapping[str, object]]]:
    """Every device of ``layout`` serving the sunny plant at ``start``, and that plant."""
    sections = Plant("sunny", seed=seed, start=start).state.sections()
    images = encode_layout(layout, sections)
    specs = [DeviceSpec.for_map(d.unit, images[d.unit], d.served) for d in layout.devices]
    return specs, sections


def zero_image(
    register_type: RegisterType, words: Mapping[int, int], ranges: Iterable[tuple[int, int]]
) -> RegisterImage:
    """A one-table image: ``words`` where given, zero elsewhere in each (first, last) range."""
    table: dict[int, int] = {}
    for first, last in ranges:
        table.update(dict.fromkeys(range(first, last + 1), 0))
    table.update(words)
    return {register_type: table}


def words32(value: int) -> tuple[int, int]:
    """A 32-bit value (two's complement when negative), high word first."""
    raw = value & 0xFFFF_FFFF
    return raw >> 16, raw & 0xFFFF


def float_words(value: float) -> tuple[int, int]:
    """An IEEE 754 single, high word first."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


def text_words(text: str, registers: int) -> tuple[int, ...]:
    """A string over ``registers`` words, two bytes each, NUL-padded."""
    raw = text.encode().ljust(2 * registers, b"\0")
    return tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))


def s16(value: int) -> int:
    """A signed 16-bit value as its register word."""
    return value & 0xFFFF


def within_step(got: object, want: object, step: float) -> bool:
    """Both floats, and ``got`` within half a ``step`` of ``want``."""
    return isinstance(got, float) and isinstance(want, float) and abs(got - want) <= step / 2
