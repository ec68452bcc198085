"""One bus shared by the agent's poller and the gateway's clients (docs/gateway.md).

The agent stays the bus's only master. :class:`BusArbiter` says who may use the
bus: the poller holds it for a whole poll cycle (every device of the bus, their
settle and pacing waits included) and goes first whenever it wants it; a
gateway request passed through to the bus ("a guest") runs only between
cycles, one at a time, and only

- when the bus is not due for the next cycle before the guest's transaction
  would end (the longest of the bus's recent transactions), or
- when it has waited through a whole cycle and no guest has run since that
  cycle ended, so that a bus whose cycles run back to back (a slow RTU line)
  still serves one guest per cycle.

So a poll cycle waits for at most one guest transaction: when that one took
longer than the bus's recent ones, or when the cycles leave no gap for it.

:class:`SharedBus` hands the poller a transport (:meth:`SharedBus.open`) that
is the bus's own one, wrapped: every answer is recorded in the gateway's
:class:`~edge.gateway_cache.RegisterCache`, every transaction is counted
(the poller's and the guests' apart), and a device whose profile asks for a
gap between requests (``command_gap_s``, drivers/device.py) gets it from the
guests too. Guests use the same transport, hence the same transport lock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Final, Self

from drivers.bus import BusConfig
from drivers.errors import NotConnected
from drivers.profiles import GENERIC, get_profile
from drivers.registers import RegisterType
from drivers.transports import Transport, open_transport
from edge.gateway_cache import CacheKey, RegisterCache
from edge.settings import DeviceConfig

__all__ = ["BusArbiter", "SharedBus"]

logger = logging.getLogger(__name__)

# How many of the bus's last transactions a guest's expected duration is taken from.
RECENT_TRANSACTIONS: Final = 32
POLL_STARTS_KEPT: Final = 100_000


class BusArbiter:
    """The poller's cycles first; guests between them (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._polling = False
        self._guest = False
        self._poll_waiting = 0
        self._guest_since_poll = False
        self._last_poll_end = -math.inf
        self._changed = asyncio.Event()
        # When the poller means to start its next cycle (its clock); -inf: not known yet.
        self.next_poll_at = -math.inf
        # When each cycle got the bus: the poll interval's jitter is measured on these.
        self.poll_starts: deque[float] = deque(maxlen=POLL_STARTS_KEPT)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @asynccontextmanager
    async def poll(self) -> AsyncIterator[None]:
        """The bus for one poll cycle: waits only for a guest transaction under way."""
        self._poll_waiting += 1
        try:
            while self._polling or self._guest:
                await self._changed.wait()
        finally:
            self._poll_waiting -= 1
        self._polling = True
        self.poll_starts.append(self._clock())
        try:
            yield
        finally:
            self._polling = False
            self._guest_since_poll = False
            self._last_poll_end = self._clock()
            self._notify()

    def _guest_may_start(self, expected_s: float, arrived: float) -> bool:
        if self._polling or self._guest or self._poll_waiting:
            return False
        if self._clock() + expected_s <= self.next_poll_at:
            return True
        # Waited through a cycle: one guest per gap, however short the gap.
        return not self._guest_since_poll and arrived < self._last_poll_end

    @asynccontextmanager
    async def guest(self, expected_s: float, wait_s: float) -> AsyncIterator[None]:
        """The bus for one guest transaction expected to take ``expected_s``.

        Raises ``TimeoutError`` when the bus was not free within ``wait_s``; only
        the wait is bounded here, never the transaction (the transport bounds it).
        """
        arrived = self._clock()
        while not self._guest_may_start(expected_s, arrived):
            left = arrived + wait_s - self._clock()
            if left <= 0:
                raise TimeoutError(f"the bus was not free within {wait_s:g} s")
            changed = self._changed
            # Nothing else changes while the bus waits for its next cycle: wake
            # then, when a cycle or a guest ends, or at the deadline.
            wait = min(left, max(0.001, self.next_poll_at - self._clock()))
            try:
                async with asyncio.timeout(wait):
                    await changed.wait()
            except TimeoutError:
                pass
        self._guest = True
        self._guest_since_poll = True
        try:
            yield
        finally:
            self._guest = False
            self._notify()


class SharedBus:
    """A bus's transport, cache recording and transaction counts, for poller and gateway."""

    def __init__(
        self,
        bus: BusConfig,
        devices: Sequence[DeviceConfig],
        cache: RegisterCache,
        *,
        opener: Callable[[BusConfig], Transport] = open_transport,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.cache = cache
        self.arbiter = BusArbiter(clock)
        self._opener = opener
        self._clock = clock
        self._gaps = {
            device.unit: get_profile(device.profile).command_gap_s
            for device in devices
            if device.profile != GENERIC and get_profile(device.profile).command_gap_s > 0
        }
        self._last_end: dict[int, float] = {}
        self._recent: deque[float] = deque(maxlen=RECENT_TRANSACTIONS)
        self._open: _SharedTransport | None = None
        # Transactions on the bus (each retry counts), the poller's and the guests' apart.
        self.poll_transactions = 0
        self.guest_transactions = 0

    @property
    def is_open(self) -> bool:
        return self._open is not None

    def open(self) -> Transport:
        """The transport the poller opens (``async with``), in place of the bus's own."""
        return _SharedTransport(self, self._opener(self.bus))

    def expected_s(self) -> float:
        """How long a transaction is expected to take: the longest recent one."""
        return max(self._recent) if self._recent else self.bus.timeout_s

    async def _paced(self, unit: int) -> None:
        gap = self._gaps.get(unit)
        last = self._last_end.get(unit)
        if gap is not None and last is not None:
            wait = last + gap - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _read(
        self,
        inner: Transport,
        register_type: RegisterType,
        address: int,
        count: int,
        unit: int,
        *,
        guest: bool,
    ) -> tuple[int, ...]:
        await self._paced(unit)
        before, started = inner.transactions, self._clock()
        try:
            values = await inner.read(register_type, address, count, unit=unit)
        finally:
            self._ended(inner, unit, before, started, guest=guest)
        self.cache.record(
            CacheKey(self.bus.name, unit, register_type), address, values, self._clock()
        )
        return values

    def _ended(
        self, inner: Transport, unit: int, before: int, started: float, *, guest: bool
    ) -> None:
        now = self._clock()
        self._last_end[unit] = now
        self._recent.append(now - started)
        spent = inner.transactions - before
        if guest:
            self.guest_transactions += spent
        else:
            self.poll_transactions += spent

    def _transport(self, unit: int) -> _SharedTransport:
        shared = self._open
        if shared is None:
            raise NotConnected(f"bus {self.bus.name} is not open", unit=unit)
        return shared

    async def guest_read(
        self, register_type: RegisterType, address: int, count: int, *, unit: int, wait_s: float
    ) -> tuple[int, ...]:
        """A gateway read on the bus, between the poller's cycles (``wait_s``: for the bus)."""
        self._transport(unit)
        async with self.arbiter.guest(self.expected_s(), wait_s):
            shared = self._transport(unit)  # the bus may have closed meanwhile
            return await self._read(shared.inner, register_type, address, count, unit, guest=True)

    async def guest_write(
        self, address: int, values: Sequence[int], *, unit: int, wait_s: float
    ) -> None:
        """A gateway write on the bus, between the poller's cycles; forgets what it wrote."""
        self._transport(unit)
        async with self.arbiter.guest(self.expected_s(), wait_s):
            inner = self._transport(unit).inner
            await self._paced(unit)
            before, started = inner.transactions, self._clock()
            try:
                await inner.write_registers(address, values, unit=unit)
            finally:
                self._ended(inner, unit, before, started, guest=True)
                # Whatever happened, the cached values may no longer be the device's.
                self.cache.forget(
                    CacheKey(self.bus.name, unit, RegisterType.HOLDING), address, len(values)
                )


class _SharedTransport:
    """The poller's view of a shared bus: the bus's transport, recorded and counted."""

    def __init__(self, shared: SharedBus, inner: Transport) -> None:
        self._shared = shared
        self.inner = inner

    @property
    def transactions(self) -> int:
        return self.inner.transactions

    async def read(
        self, register_type: RegisterType, address: int, count: int, *, unit: int
    ) -> tuple[int, ...]:
        return await self._shared._read(
            self.inner, register_type, address, count, unit, guest=False
        )

    async def write_registers(self, address: int, values: Sequence[int], *, unit: int) -> None:
        # Whoever holds this transport holds the bus already (the poller, which never
        # writes): no turn to wait for.
        await self.inner.write_registers(address, values, unit=unit)
        key = CacheKey(self._shared.bus.name, unit, RegisterType.HOLDING)
        self._shared.cache.forget(key, address, len(values))

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        self._shared._open = self
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._shared._open is self:
            self._shared._open = None
        await self.inner.__aexit__(exc_type, exc, tb)
