"""The read planner: a register map's spans coalesced into the fewest requests.

Pure logic. Each request stays within one register table (one function code),
asks for at most ``max_count`` items (MAP V1.1b3, 6.3: 125 registers; less where a
device documents a lower limit, e.g. Eastron's 40 parameters = 80 registers) and
bridges gaps of at most ``max_gap`` unused registers: reading a few unused
registers costs 2 bytes each, a separate request costs a whole round trip.
``max_gap`` is a cost choice only. What a device refuses to read is data of its
own: :class:`Hole` s, address ranges it answers with exception 02 (ILLEGAL DATA
ADDRESS) to any read that touches them. No request ever touches a hole, whatever
``max_gap`` allows, and a point lying in one is a contradiction of its map.

For spans on one line, taking each span into the current request while it fits
and starting a new one otherwise is optimal: any plan must start a request at
the first span, and extending that request as far as possible never forces more
requests later. Holes cut the line into stretches that no request crosses, and
the argument holds on each. :func:`minimal_reads` is that plan with every other
gap bridged: the floor any plan can reach under the device's limits.

Exceptions: :class:`PlanError` (a ``ValueError``) for a span no request can carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

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


@dataclass(frozen=True, order=True)
class Hole:
    """Addresses ``first``..``last`` (inclusive, as vendors cite them) of one table
    that a device refuses to read: a read touching any of them gets exception 02.
    """

    register_type: RegisterType
    first: int
    last: int

    def __post_init__(self) -> None:
        if not 0 <= self.first <= self.last <= 0xFFFF:
            raise ValueError(
                f"bad unreadable range {self.first:#06x}-{self.last:#06x}: "
                "need 0 <= first <= last <= 0xFFFF"
            )

    def touches(self, register_type: RegisterType, address: int, count: int) -> bool:
        """Whether ``count`` items of ``register_type`` from ``address`` include one of ours."""
        return (
            register_type is self.register_type
            and count > 0
            and address <= self.last
            and self.first < address + count
        )

    def __str__(self) -> str:
        return f"{self.register_type.value} {self.first:#06x}-{self.last:#06x}"


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
    """A span that no single request can carry; ``reason`` says why."""

    def __init__(self, span: Span, reason: str) -> None:
        super().__init__(
            f"{span.count} {span.register_type.value} items at {span.address}: {reason}"
        )
        self.span = span
        self.reason = reason


# A gap no table can exceed: bridging "every gap" means this.
ANY_GAP: Final = 0x10000


def _touched(holes: tuple[Hole, ...], register_type: RegisterType, start: int, end: int) -> bool:
    return any(h.touches(register_type, start, end - start) for h in holes)


def plan_reads(
    spans: Iterable[Span],
    *,
    max_count: int = 125,
    max_gap: int = 16,
    holes: Iterable[Hole] = (),
) -> tuple[ReadRequest, ...]:
    """The fewest requests covering every span, in table then address order.

    Gaps of at most ``max_gap`` unused items are bridged, unless the gap touches
    one of ``holes``: no request ever reads an address the device refuses.
    """
    unreadable = tuple(holes)
    ordered = sorted(set(spans), key=lambda s: (s.register_type.value, s.address, s.count))
    requests: list[ReadRequest] = []
    current: ReadRequest | None = None
    for span in ordered:
        limit = min(max_count, span.register_type.max_count)
        if span.count > limit:
            raise PlanError(span, f"exceed the {limit} one request may read")
        if span.count <= 0 or span.address < 0 or span.end > 0x10000:
            raise PlanError(span, "not a range of addresses 0-0xFFFF")
        for hole in unreadable:
            if hole.touches(span.register_type, span.address, span.count):
                raise PlanError(span, f"lie in the unreadable range {hole}")
        if current is not None and current.register_type is span.register_type:
            end = max(current.end, span.end)
            gap = span.address - current.end
            if (
                gap <= max_gap
                and end - current.address <= limit
                and not _touched(unreadable, span.register_type, current.end, span.address)
            ):
                current = ReadRequest(span.register_type, current.address, end - current.address)
                continue
        if current is not None:
            requests.append(current)
        current = ReadRequest(span.register_type, span.address, span.count)
    if current is not None:
        requests.append(current)
    return tuple(requests)


def minimal_reads(
    spans: Iterable[Span], *, max_count: int = 125, holes: Iterable[Hole] = ()
) -> tuple[ReadRequest, ...]:
    """The floor any plan can reach: every gap bridged except those touching a hole.

    A plan with ``max_gap`` may take more requests (it pays for them in unread
    registers not carried); none can take fewer.
    """
    return plan_reads(spans, max_count=max_count, max_gap=ANY_GAP, holes=holes)
