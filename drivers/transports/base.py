"""The transport interface: one read, one bus, one transaction at a time.

A transport owns one client and one lock for its bus (an RS485 line carries one
transaction at a time; a TCP gateway usually serialises too). It is an async
context manager; ``read`` returns the registers (coils and discrete inputs as 0/1)
or raises a :class:`~drivers.errors.ModbusError`, never a library's exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from drivers.registers import RegisterType


@dataclass(frozen=True)
class Request:
    """What one read asks: for error messages and the mapping of failures."""

    unit: int
    register_type: RegisterType
    address: int
    count: int


class Transport(Protocol):
    """What drivers need from a bus."""

    @property
    def transactions(self) -> int:
        """Requests sent so far (each retry counts): for tests and benchmarks."""
        ...

    async def read(
        self, register_type: RegisterType, address: int, count: int, *, unit: int
    ) -> tuple[int, ...]: ...

    async def write_registers(self, address: int, values: Sequence[int], *, unit: int) -> None:
        """Write holding registers (FC 16, or FC 6 for one): the edge gateway's allowed
        writes (docs/gateway.md); the agent itself only reads."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
