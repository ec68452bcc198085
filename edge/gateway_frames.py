"""Modbus TCP frames for the gateway (docs/gateway.md): MBAP headers and PDUs, pure.

Everything here works on plain bytes and values, no sockets:

- :func:`parse_header` reads the 7-byte MBAP header (Modbus Messaging
  Implementation Guide V1.0b, 3.1.3: transaction id, protocol id 0, length of
  what follows, unit id) and refuses one no Modbus client sends; the server then
  closes the connection, since the stream can no longer be framed.
- :func:`parse_pdu` turns a request PDU into a :class:`Read` or :class:`Write`,
  or a :class:`Refusal` carrying the exception code the Modbus Application
  Protocol V1.1b3 (MAP) prescribes in its per-function state diagrams (6.1-6.12):
  01 for a function the gateway does not serve, 03 for a bad quantity or a
  length that does not match, 02 for a range that leaves the 16-bit address space.
- ``encode_*`` build the response ADUs.

The gateway serves FC 1, 2, 3, 4 (reads), 6 and 16 (writes); nothing else.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from drivers.errors import ExceptionCode
from drivers.registers import RegisterType

__all__ = [
    "HEADER_SIZE",
    "FrameError",
    "Function",
    "Header",
    "Read",
    "Refusal",
    "Write",
    "encode_exception",
    "encode_read",
    "encode_write",
    "pack_bits",
    "parse_header",
    "parse_pdu",
]

HEADER_SIZE: Final = 7  # MBAP: transaction (2), protocol (2), length (2), unit (1)
# MAP 4.1: a PDU is at most 253 bytes; the MBAP length counts the unit id too.
MAX_PDU: Final = 253
MAX_LENGTH: Final = MAX_PDU + 1
MIN_LENGTH: Final = 2  # unit id and a function code
ADDRESS_SPACE: Final = 0x10000


class Function(enum.IntEnum):
    """The function codes the gateway serves (MAP 6)."""

    READ_COILS = 0x01
    READ_DISCRETE_INPUTS = 0x02
    READ_HOLDING_REGISTERS = 0x03
    READ_INPUT_REGISTERS = 0x04
    WRITE_SINGLE_REGISTER = 0x06
    WRITE_MULTIPLE_REGISTERS = 0x10


_READ_TABLE: Final = {
    Function.READ_COILS: RegisterType.COIL,
    Function.READ_DISCRETE_INPUTS: RegisterType.DISCRETE,
    Function.READ_HOLDING_REGISTERS: RegisterType.HOLDING,
    Function.READ_INPUT_REGISTERS: RegisterType.INPUT,
}
# MAP 6.1-6.4: quantities a read may ask for (1 to 2000 bits, 1 to 125 registers).
_READ_MAX: Final = {
    Function.READ_COILS: 2000,
    Function.READ_DISCRETE_INPUTS: 2000,
    Function.READ_HOLDING_REGISTERS: 125,
    Function.READ_INPUT_REGISTERS: 125,
}
# MAP 6.12: Write Multiple Registers carries 1 to 123 registers.
WRITE_MAX: Final = 123


class FrameError(ValueError):
    """An MBAP header no Modbus client sends: the stream cannot be framed any more."""


@dataclass(frozen=True, slots=True)
class Header:
    transaction: int
    protocol: int
    length: int  # bytes after the length field: the unit id and the PDU
    unit: int

    @property
    def pdu_size(self) -> int:
        return self.length - 1


@dataclass(frozen=True, slots=True)
class Read:
    """A read request: ``count`` items of ``table`` from ``address``."""

    function: Function
    table: RegisterType
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Write:
    """A write of holding registers from ``address`` (FC 6: one value, FC 16: several)."""

    function: Function
    address: int
    values: tuple[int, ...]

    @property
    def end(self) -> int:
        return self.address + len(self.values)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request answered with an exception code, and why (for the log)."""

    function: int
    code: ExceptionCode
    reason: str


def parse_header(data: bytes) -> Header:
    """The MBAP header of ``data`` (its first 7 bytes); :class:`FrameError` if it is not one."""
    if len(data) < HEADER_SIZE:
        raise FrameError(f"{len(data)} bytes is not an MBAP header")
    transaction, protocol, length, unit = struct.unpack(">HHHB", data[:HEADER_SIZE])
    if protocol != 0:
        # Messaging Implementation Guide 3.1.3: 0 = MODBUS protocol; nothing else is ours.
        raise FrameError(f"protocol id {protocol} is not Modbus (0)")
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise FrameError(f"length {length} is outside {MIN_LENGTH}-{MAX_LENGTH}")
    return Header(transaction, protocol, length, unit)


def parse_pdu(pdu: bytes) -> Read | Write | Refusal:
    """A request PDU as a request, or the refusal MAP prescribes for it."""
    if not pdu:
        return Refusal(0, ExceptionCode.ILLEGAL_FUNCTION, "empty PDU")
    code = pdu[0]
    try:
        function = Function(code)
    except ValueError:
        return Refusal(code, ExceptionCode.ILLEGAL_FUNCTION, f"function code {code} not served")
    body = pdu[1:]
    if function in _READ_TABLE:
        return _parse_read(function, body)
    if function is Function.WRITE_SINGLE_REGISTER:
        if len(body) != 4:
            return _bad_value(function, f"{len(body) + 1}-byte PDU, expected 5")
        address, value = struct.unpack(">HH", body)
        return Write(function, address, (value,))
    return _parse_write_multiple(body)


def _bad_value(function: Function, reason: str) -> Refusal:
    return Refusal(function, ExceptionCode.ILLEGAL_DATA_VALUE, reason)


def _parse_read(function: Function, body: bytes) -> Read | Refusal:
    if len(body) != 4:
        return _bad_value(function, f"{len(body) + 1}-byte PDU, expected 5")
    address, count = struct.unpack(">HH", body)
    limit = _READ_MAX[function]
    if not 1 <= count <= limit:
        return _bad_value(function, f"quantity {count} outside 1-{limit}")
    if address + count > ADDRESS_SPACE:
        return Refusal(
            function,
            ExceptionCode.ILLEGAL_DATA_ADDRESS,
            f"{count} items from {address} pass 65535",
        )
    return Read(function, _READ_TABLE[function], address, count)


def _parse_write_multiple(body: bytes) -> Write | Refusal:
    function = Function.WRITE_MULTIPLE_REGISTERS
    if len(body) < 5:
        return _bad_value(function, f"{len(body) + 1}-byte PDU, expected at least 6")
    address, count, byte_count = struct.unpack(">HHB", body[:5])
    if not 1 <= count <= WRITE_MAX or byte_count != 2 * count:
        return _bad_value(function, f"quantity {count} with {byte_count} bytes")
    if len(body) != 5 + byte_count:
        return _bad_value(function, f"{byte_count} bytes announced, {len(body) - 5} sent")
    if address + count > ADDRESS_SPACE:
        return Refusal(
            function,
            ExceptionCode.ILLEGAL_DATA_ADDRESS,
            f"{count} registers from {address} pass 65535",
        )
    values = struct.unpack(f">{count}H", body[5:])
    return Write(function, address, tuple(values))


def _adu(transaction: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


def pack_bits(bits: Sequence[int]) -> bytes:
    """Coils and discrete inputs, 8 to a byte, the first in the lowest bit (MAP 6.1)."""
    packed = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        if bit:
            packed[index // 8] |= 1 << (index % 8)
    return bytes(packed)


def encode_read(header: Header, request: Read, values: Sequence[int]) -> bytes:
    """The response ADU to ``request`` with ``values`` (0/1 for bits, words for registers)."""
    if len(values) != request.count:
        raise ValueError(f"{len(values)} values for a read of {request.count}")
    words = f">{len(values)}H"
    data = pack_bits(values) if request.table.is_bit else struct.pack(words, *values)
    return _adu(header.transaction, header.unit, bytes([request.function, len(data)]) + data)


def encode_write(header: Header, request: Write) -> bytes:
    """The response ADU to a write: FC 6 echoes address and value, FC 16 address and count."""
    if request.function is Function.WRITE_SINGLE_REGISTER:
        pdu = struct.pack(">BHH", request.function, request.address, request.values[0])
    else:
        pdu = struct.pack(">BHH", request.function, request.address, len(request.values))
    return _adu(header.transaction, header.unit, pdu)


def encode_exception(header: Header, function: int, code: ExceptionCode) -> bytes:
    """An exception response (MAP 7): the function code with its high bit set, and the code."""
    return _adu(header.transaction, header.unit, bytes([(function & 0x7F) | 0x80, int(code)]))
