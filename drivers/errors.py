"""What can go wrong talking to a device, as our own exception types.

Every library error (pymodbus exceptions and its ``isError()`` responses,
minimalmodbus exceptions, serial and socket errors) is translated into these in
one place, :mod:`drivers.transports.mapping`; nothing above the transports sees a
library's exception. A read either returns correct values or raises one of these:
never a wrong value, never ``None``.

Exception tree::

    DriverError
    ├── ModbusError                 a transaction failed (carries unit, table, address, count)
    │   ├── NotConnected            the bus cannot be opened / the TCP peer refuses
    │   ├── NoResponse              nothing (complete) came back within the timeout
    │   ├── ExceptionResponse       the device answered with an exception code
    │   ├── BadFrame                garbage, CRC error, wrong length or function code
    │   └── WrongUnit               a frame from another unit id answered
    ├── DiscoveryError              SunSpec: no "SunS" marker, or a broken model chain
    └── ProfileError                a register map is invalid (names the key)
"""

from __future__ import annotations

import enum

from drivers.registers import RegisterType


class ExceptionCode(enum.IntEnum):
    """Modbus exception codes (MAP V1.1b3, 7 "MODBUS Exception Responses")."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    NEGATIVE_ACKNOWLEDGE = 0x07
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_FAILED = 0x0B
    UNKNOWN = 0xFF


class DriverError(Exception):
    """Base of everything the drivers raise."""


class ModbusError(DriverError):
    """A transaction with ``unit`` failed; the bus itself stays usable.

    ``unit`` is None when no transaction was involved (a bus that cannot be
    opened): the message then names no unit rather than a made-up one.
    ``reason`` is the message without the unit and register prefix.
    """

    def __init__(
        self,
        message: str,
        *,
        unit: int | None,
        register_type: RegisterType | None = None,
        address: int | None = None,
        count: int | None = None,
    ) -> None:
        where = "" if unit is None else f"unit {unit}"
        if unit is not None and register_type is not None and address is not None:
            where += f", {register_type.value} {address}"
            if count is not None:
                where += f"+{count}"
        super().__init__(f"{where}: {message}" if where else message)
        self.unit = unit
        self.reason = message
        self.register_type = register_type
        self.address = address
        self.count = count


class NotConnected(ModbusError):
    """The serial port cannot be opened or the TCP connection is refused or lost.

    A bus-level failure: every device of the bus is unreachable, not only the
    unit whose request happened to meet it.
    """


class NoResponse(ModbusError):
    """No complete answer within the bus timeout (after the configured retries)."""


class ExceptionResponse(ModbusError):
    """The device answered with a Modbus exception code."""

    def __init__(
        self,
        code: ExceptionCode,
        *,
        unit: int,
        register_type: RegisterType | None = None,
        address: int | None = None,
        count: int | None = None,
    ) -> None:
        super().__init__(
            f"exception {code.value:#04x} ({code.name.lower()})",
            unit=unit,
            register_type=register_type,
            address=address,
            count=count,
        )
        self.code = code


class BadFrame(ModbusError):
    """Bytes came back that are not a valid answer to the request."""


class WrongUnit(ModbusError):
    """A different unit id answered the request."""

    def __init__(
        self,
        answered_by: int | None,
        *,
        unit: int,
        register_type: RegisterType | None = None,
        address: int | None = None,
        count: int | None = None,
    ) -> None:
        who = "another unit" if answered_by is None else f"unit {answered_by}"
        super().__init__(
            f"answered by {who}",
            unit=unit,
            register_type=register_type,
            address=address,
            count=count,
        )
        self.answered_by = answered_by


class DiscoveryError(DriverError):
    """SunSpec discovery failed: no marker at any base address, or a broken chain."""

    def __init__(self, unit: int, reason: str) -> None:
        super().__init__(f"unit {unit}: SunSpec discovery failed: {reason}")
        self.unit = unit
        self.reason = reason


class ProfileError(DriverError, ValueError):
    """A register map is invalid; ``key`` names the offending entry."""

    def __init__(self, key: str, reason: str, *, source: str = "") -> None:
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{key}: {reason}")
        self.key = key
        self.reason = reason
        self.source = source
