"""The read planner: a register map's spans coalesced into the fewest requests.

Pure logic. Each request stays within one register table (one function code),
asks for at most ``max_count`` items (MAP V1.1b3, 6.3: 125 registers; less where a
device documents a lower limit, e.g. Eastron's 40 parameters = 80 registers) and
bridges gaps of at most ``max_gap`` unused registers: reading a few unused
registers costs 2 bytes each, a separate request costs a whole round trip.

For spans on one line, taking each span into the current request while it fits
and starting a new one otherwise is optimal: any plan must start a request at
the first span, and extending that request as far as possible never forces more
requests later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drivers.registers import RegisterType


@dataclass(frozen=True, order=True)
class Span:
    """Registers a point needs: ``count`` items of one table from ``address``."""

    register_type: RegisterType
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True)
class ReadRequest:
    """One Modbus read: a function code, a start address and a count."""

    register_type: RegisterType
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count

    def covers(self, span: Span) -> bool:
        return (
            span.register_type is self.register_type
            and self.address <= span.address
            and span.end <= self.end
        )


class PlanError(ValueError):
    """A span that no single request can carry."""

    def __init__(self, span: Span, max_count: int) -> None:
        super().__init__(
            f"{span.count} {span.register_type.value} items at {span.address} exceed "
            f"the {max_count} one request may read"
        )
        self.span = span
        self.max_count = max_count


def plan_reads(
    spans: Iterable[Span], *, max_count: int = 125, max_gap: int = 16
) -> tuple[ReadRequest, ...]:
    """The fewest requests covering every span, in table then address order."""
    ordered = sorted(set(spans), key=lambda s: (s.register_type.value, s.address, s.count))
    requests: list[ReadRequest] = []
    current: ReadRequest | None = None
    for span in ordered:
        limit = min(max_count, span.register_type.max_count)
        if span.count > limit or span.count <= 0 or span.address < 0:
            raise PlanError(span, limit)
        if span.end > 0x10000:
            raise PlanError(span, limit)
        if current is not None and current.register_type is span.register_type:
            end = max(current.end, span.end)
            gap = span.address - current.end
            if gap <= max_gap and end - current.address <= limit:
                current = ReadRequest(span.register_type, current.address, end - current.address)
                continue
        if current is not None:
            requests.append(current)
        current = ReadRequest(span.register_type, span.address, span.count)
    if current is not None:
        requests.append(current)
    return tuple(requests)
