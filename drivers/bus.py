"""A bus's settings: the ``[[bus]]`` table of the edge config (docs/configuration.md), as a value.

The edge config builds a :class:`BusConfig`; the transports take everything
they need from it (timeouts, retries, the inter-frame silence), so no timing
constant hides in the transport code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

# Modbus over Serial Line V1.02, 2.5.1.1: an RTU character is 11 bits (start, 8
# data, parity or a second stop bit, stop); frames are separated by at least 3.5
# character times, fixed at 1.750 ms above 19200 baud.
BITS_PER_CHARACTER: Final = 11
FIXED_SILENCE_ABOVE_BAUD: Final = 19200
FIXED_SILENCE_S: Final = 0.00175


class BusType(enum.Enum):
    RTU = "rtu"
    TCP = "tcp"


class Backend(enum.Enum):
    PYMODBUS = "pymodbus"
    MINIMALMODBUS = "minimalmodbus"  # RTU only


class Parity(enum.Enum):
    NONE = "N"
    EVEN = "E"
    ODD = "O"


def character_time_s(baudrate: int) -> float:
    return BITS_PER_CHARACTER / baudrate


def frame_silence_s(baudrate: int) -> float:
    """The 3.5-character silence that ends an RTU frame (Serial Line V1.02, 2.5.1.1)."""
    if baudrate > FIXED_SILENCE_ABOVE_BAUD:
        return FIXED_SILENCE_S
    return 3.5 * character_time_s(baudrate)


@dataclass(frozen=True)
class BusConfig:
    """One bus: a serial line (RTU) or a TCP endpoint, with its timing."""

    name: str
    type: BusType
    device: str = ""  # rtu: /dev/ttyUSB0
    baudrate: int = 9600
    parity: Parity = Parity.NONE
    stopbits: int = 1
    bytesize: int = 8
    host: str = ""  # tcp
    port: int = 502
    timeout_s: float = 0.5
    retries: int = 1  # further attempts after a no-response; never after an exception code
    backend: Backend = Backend.PYMODBUS
    silence_s: float | None = None  # None: 3.5 characters at the baud rate

    def __post_init__(self) -> None:
        if self.type is BusType.RTU and not self.device:
            raise ValueError(f"bus {self.name!r}: an rtu bus needs a device")
        if self.type is BusType.TCP and not self.host:
            raise ValueError(f"bus {self.name!r}: a tcp bus needs a host")
        if self.type is BusType.TCP and self.backend is Backend.MINIMALMODBUS:
            raise ValueError(f"bus {self.name!r}: backend minimalmodbus is rtu only")
        if self.timeout_s <= 0 or self.retries < 0:
            raise ValueError(f"bus {self.name!r}: timeout_s must be > 0 and retries >= 0")

    @property
    def inter_frame_s(self) -> float:
        """Silence kept after each transaction before the next request."""
        if self.type is BusType.TCP:
            return 0.0
        return self.silence_s if self.silence_s is not None else frame_silence_s(self.baudrate)

    @property
    def drain_s(self) -> float:
        """Extra silence after a failed transaction: a late answer must not meet the next
        request (RTU has no transaction id to tell them apart)."""
        if self.type is BusType.TCP:
            return 0.0
        return min(0.05, self.timeout_s / 4)

    @property
    def endpoint(self) -> str:
        return self.device if self.type is BusType.RTU else f"{self.host}:{self.port}"
