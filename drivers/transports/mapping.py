"""The one place where library failures become our exceptions (see drivers.errors).

pymodbus reports failures two ways: exceptions (``ModbusIOException`` for "no
response" and for a frame from another unit, ``ConnectionException``) and
responses whose ``isError()`` is true (exception codes). It also drops frames it
cannot use (bad CRC, another unit id on RTU) silently and then times out. To tell
"silence" from "garbage" from "another unit answered", the transport records the
bytes that came back and :func:`classify_failure` looks at them.

minimalmodbus raises ``NoResponseError``, ``InvalidResponseError`` (bad CRC,
wrong length, wrong slave address) and ``SlaveReportedException`` subclasses,
whose messages are fixed strings in the pinned version 2.1.1
(``_check_response_slaveerrorcode``): we map those strings to codes.
"""

from __future__ import annotations

from typing import Final, TypedDict

import minimalmodbus
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.errors import (
    BadFrame,
    ExceptionCode,
    ExceptionResponse,
    ModbusError,
    NoResponse,
    NotConnected,
    WrongUnit,
)
from drivers.registers import RegisterType
from drivers.transports.base import Request


def crc16(data: bytes) -> int:
    """Modbus RTU CRC (Serial Line V1.02, 6.2.2), as the integer sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu_frame(payload: bytes) -> bytes:
    """``payload`` (unit, function, data) with its CRC appended, low byte first."""
    return payload + crc16(payload).to_bytes(2, "little")


class _Context(TypedDict):
    unit: int
    register_type: RegisterType
    address: int
    count: int


def _context(request: Request) -> _Context:
    return {
        "unit": request.unit,
        "register_type": request.register_type,
        "address": request.address,
        "count": request.count,
    }


def _valid_rtu_units(data: bytes) -> list[int]:
    """Unit ids of every CRC-valid RTU frame inside ``data`` (sliding search)."""
    units = []
    for start in range(len(data)):
        for end in range(start + 4, min(len(data), start + 256) + 1):
            chunk = data[start:end]
            if crc16(chunk[:-2]) == int.from_bytes(chunk[-2:], "little"):
                units.append(chunk[0])
                break
    return units


def _valid_mbap(data: bytes) -> bool:
    """A whole Modbus TCP ADU (Messaging Implementation Guide V1.0b, 3.1.3).

    MBAP header: transaction id (2), protocol id 0 (2), length of what follows (2),
    unit id (1).
    """
    if len(data) < 8 or data[2:4] != b"\x00\x00":
        return False
    return int.from_bytes(data[4:6], "big") == len(data) - 6


def classify_failure(request: Request, received: bytes, *, rtu: bool) -> ModbusError:
    """A failed transaction, judged by the bytes that came back (if any)."""
    ctx = _context(request)
    if not received:
        return NoResponse("no response within the timeout", **ctx)
    if rtu:
        units = [u for u in _valid_rtu_units(received) if u != request.unit]
        if units:
            return WrongUnit(units[0], **ctx)
    elif _valid_mbap(received) and received[6] != request.unit:
        return WrongUnit(received[6], **ctx)
    return BadFrame(f"invalid answer {received[:32].hex(' ')}", **ctx)


def from_pymodbus(
    request: Request, err: ModbusException | OSError, received: bytes, *, rtu: bool
) -> ModbusError:
    """A pymodbus (or socket/serial) exception raised by a read."""
    ctx = _context(request)
    if isinstance(err, ConnectionException | OSError):
        return NotConnected(str(err), **ctx)
    if isinstance(err, ModbusIOException):
        return classify_failure(request, received, rtu=rtu)
    return BadFrame(str(err), **ctx)


def check_pymodbus_response(request: Request, response: ModbusPDU) -> tuple[int, ...]:
    """The registers of a response, or the exception its ``isError()`` stands for."""
    check_pymodbus_write(request, response)
    if request.register_type.is_bit:
        values = tuple(int(bool(b)) for b in response.bits[: request.count])
    else:
        values = tuple(response.registers)
    if len(values) != request.count:
        raise BadFrame(
            f"asked for {request.count} items, got {len(values)}",
            **_context(request),
        )
    return values


def check_pymodbus_write(request: Request, response: ModbusPDU) -> None:
    """Nothing for an answer (a write's acknowledgement); the exception ``isError()`` means."""
    if response.isError():
        code = getattr(response, "exception_code", ExceptionCode.UNKNOWN)
        try:
            exc_code = ExceptionCode(int(code))
        except ValueError:
            exc_code = ExceptionCode.UNKNOWN
        raise ExceptionResponse(exc_code, **_context(request))


# minimalmodbus 2.1.1, _check_response_slaveerrorcode: message -> code.
_MINIMALMODBUS_CODES: Final = {
    "Slave reported illegal function": ExceptionCode.ILLEGAL_FUNCTION,
    "Slave reported illegal data address": ExceptionCode.ILLEGAL_DATA_ADDRESS,
    "Slave reported illegal data value": ExceptionCode.ILLEGAL_DATA_VALUE,
    "Slave reported device failure": ExceptionCode.SERVER_DEVICE_FAILURE,
    "Slave reported device busy": ExceptionCode.SERVER_DEVICE_BUSY,
    "Slave reported negative acknowledge": ExceptionCode.NEGATIVE_ACKNOWLEDGE,
    "Slave reported memory parity error": ExceptionCode.MEMORY_PARITY_ERROR,
    "Slave reported gateway path unavailable": ExceptionCode.GATEWAY_PATH_UNAVAILABLE,
    "Slave reported gateway target device failed to respond": (ExceptionCode.GATEWAY_TARGET_FAILED),
}


def from_minimalmodbus(request: Request, err: Exception) -> ModbusError:
    """A minimalmodbus (or serial) exception raised by a read."""
    ctx = _context(request)
    text = str(err)
    if isinstance(err, minimalmodbus.NoResponseError):
        return NoResponse("no response within the timeout", **ctx)
    if isinstance(err, minimalmodbus.SlaveReportedException):
        code = _MINIMALMODBUS_CODES.get(text, ExceptionCode.UNKNOWN)
        return ExceptionResponse(code, **ctx)
    if isinstance(err, minimalmodbus.InvalidResponseError):
        if text.startswith("Wrong return slave address"):
            answered = text.split(":", 1)[1].split()[0]
            return WrongUnit(int(answered) if answered.isdigit() else None, **ctx)
        return BadFrame(text, **ctx)
    if isinstance(err, OSError):
        return NotConnected(text, **ctx)
    return BadFrame(text, **ctx)
