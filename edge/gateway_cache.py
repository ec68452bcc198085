"""The registers the agent's own polls brought back, for the gateway to answer from (pure).

Every successful read on a bus (the poller's, a passed-through one) is recorded
here, register by register, with the monotonic time its answer came. A
gateway read is answered from here only when every item it asks for was read
and the oldest of them is at most ``max_age_s`` old; otherwise it goes to the
bus whole. Nothing is ever merged from the cache and the bus into one answer,
and nothing is answered that a device did not send.

Addresses are wire addresses, as the requests carried them (a byte-addressed
table is recorded under the addresses its reads used: drivers/profile.py).
A write through the gateway forgets the registers it wrote: the next read of
them goes to the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from drivers.registers import RegisterType

__all__ = ["CacheKey", "RegisterCache"]


@dataclass(frozen=True, slots=True)
class CacheKey:
    """One device's table: the bus it is on, its unit id there, the table."""

    bus: str
    unit: int
    table: RegisterType


@dataclass(slots=True)
class _Table:
    values: dict[int, int] = field(default_factory=dict)
    read_at: dict[int, float] = field(default_factory=dict)  # monotonic


class RegisterCache:
    """The last value read of each register of each device, and when."""

    def __init__(self) -> None:
        self._tables: dict[CacheKey, _Table] = {}
        self.hits = 0
        self.misses = 0

    def record(self, key: CacheKey, address: int, values: Sequence[int], at: float) -> None:
        """The answer to a read of ``len(values)`` items from ``address``, received at ``at``."""
        table = self._tables.setdefault(key, _Table())
        for offset, value in enumerate(values):
            table.values[address + offset] = value
            table.read_at[address + offset] = at

    def lookup(
        self, key: CacheKey, address: int, count: int, *, now: float, max_age_s: float
    ) -> tuple[int, ...] | None:
        """The ``count`` items from ``address`` if every one is cached and fresh, else None.

        None is "not here" (a miss, counted), never a failure: the caller reads the bus.
        """
        table = self._tables.get(key)
        if table is None or count <= 0:
            self.misses += 1
            return None
        oldest_allowed = now - max_age_s
        values: list[int] = []
        for register in range(address, address + count):
            at = table.read_at.get(register)
            if at is None or at < oldest_allowed:
                self.misses += 1
                return None
            values.append(table.values[register])
        self.hits += 1
        return tuple(values)

    def forget(self, key: CacheKey, address: int, count: int) -> None:
        """Drop ``count`` registers from ``address`` (they were just written)."""
        table = self._tables.get(key)
        if table is None:
            return
        for register in range(address, address + count):
            table.values.pop(register, None)
            table.read_at.pop(register, None)

    def registers(self, key: CacheKey) -> int:
        """How many registers of ``key`` are held (for tests and status)."""
        table = self._tables.get(key)
        return 0 if table is None else len(table.values)
