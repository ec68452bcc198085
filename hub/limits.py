"""How many connections the hub holds, and for how long (docs/security.md, "Limits").

Pure bookkeeping, no sockets: hub/guard.py applies :class:`ConnectionGate` to
every TCP connection uvicorn accepts, the dashboard door applies
:class:`AddressCounts` to dashboards, and ``ems hub serve`` raises the
file-descriptor limit (:func:`raise_fd_limit`) and fits the caps into it
(:meth:`ConnectionLimits.fitted`).

A *pending* connection is a TCP connection that is not (yet) a WebSocket: it is
waiting for its HTTP request, being answered, or idle between two requests. A
client that means well sends its request as soon as it connects; one that never
does holds a file descriptor for nothing. So:

- a pending connection *idle* (no request in progress) for ``handshake_timeout_s``
  is closed;
- at most ``max_pending_per_address`` pending connections per client address: the
  next one from that address is answered 503 and closed;
- at most ``max_pending`` in all: a newcomer then takes the place of an idle
  connection (that one is closed): the oldest of the address holding the most
  pending connections, at once if that address holds at least two more than the
  newcomer's, else once idle for :data:`EVICT_AFTER_S`. So idle connections from
  a few addresses give way to everyone else, idle ones from many addresses
  cannot lock everyone out for long, and a reconnect storm (one connection per
  address, each about to send its request) evicts nobody; with none to evict the
  newcomer is answered 503.

Addresses in ``exempt`` (by default loopback, where a reverse proxy or a local
health check connects from) are not held to the per-address caps, only to the
global ones. 0 turns a cap or a timeout off.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import resource
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

logger = logging.getLogger(__name__)

# A pending connection idle for less than this is never evicted: at the start of
# a reconnect storm every connection is new and about to send its request.
EVICT_AFTER_S: Final = 1.0
# File descriptors kept for what is not a client socket (storage, logs, the
# listening socket, libraries), and the share of the rest pending connections
# may take; the remainder is for devices and dashboards.
FD_RESERVE: Final = 64
PENDING_FD_SHARE: Final = 4
# While caps are being hit, one warning line per this many seconds, with counts.
CAP_REPORT_EVERY_S: Final = 60.0


class Refusal(enum.StrEnum):
    """Why a connection was refused; a label of ``ems_connections_refused_total``."""

    PENDING_FULL = "pending_full"  # 503 on connect: max_pending, nothing to evict
    ADDRESS_FULL = "address_full"  # 503 on connect: max_pending_per_address
    DASHBOARDS_FULL = "dashboards_full"  # 1013 after accept: max_dashboards
    DASHBOARDS_ADDRESS_FULL = "dashboards_address_full"  # 1013: max_dashboards_per_address


class Closure(enum.StrEnum):
    """Why the hub closed a connection on its own; a label of ``ems_connections_closed_total``."""

    HANDSHAKE_TIMEOUT = "handshake_timeout"  # pending, idle for handshake_timeout_s
    EVICTED = "evicted"  # pending and idle, its place taken by a newcomer (max_pending)
    DEVICE_IDLE = "device_idle"  # a device socket silent for device_idle_timeout_s


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits ``ems hub serve`` applies; defaults are the documented ones."""

    handshake_timeout_s: float = 5.0
    device_idle_timeout_s: float = 300.0
    max_pending: int = 1024
    max_pending_per_address: int = 64
    max_dashboards: int = 10_000
    max_dashboards_per_address: int = 256
    # Wrong viewer tokens per client address and minute (hub/guess_budget.py);
    # the exempt addresses below are held to it too.
    viewer_guesses: int = 10
    exempt: tuple[str, ...] = ("127.0.0.1", "::1")

    def fitted(self, fd_limit: int) -> ConnectionLimits:
        """These limits with the caps lowered to fit ``fd_limit`` file descriptors.

        Of what is left after :data:`FD_RESERVE`, pending connections may take a
        quarter and dashboards half: idle connections and watchers must never take
        the descriptors a device or a health check needs.
        """
        budget = max(16, fd_limit - FD_RESERVE)
        pending = max(8, budget // PENDING_FD_SHARE)
        dashboards = max(8, budget // 2)
        return replace(
            self,
            max_pending=_capped(self.max_pending, pending),
            max_pending_per_address=_capped(self.max_pending_per_address, pending),
            max_dashboards=_capped(self.max_dashboards, dashboards),
        )

    @property
    def max_lingering(self) -> int:
        """Refused connections that may wait for their peer to read the 503 (hub/guard.py)."""
        return max(4, self.max_pending // 4)

    def is_exempt(self, address: str) -> bool:
        return _normal(address) in {_normal(a) for a in self.exempt}


def _capped(value: int, cap: int) -> int:
    """``value`` (0: no cap of its own) held to ``cap``."""
    return min(value, cap) if value else cap


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


class Droppable(Protocol):
    """A pending connection, as the gate sees it."""

    def drop(self, closure: Closure) -> None:
        """Close the connection now (the gate already forgot it)."""


@dataclass(slots=True)
class GateCounters:
    """For /metrics; created by ``HubMetrics`` (hub/metrics.py) and handed to the gate."""

    refused: Counter[Refusal] = field(default_factory=Counter)
    closed: Counter[Closure] = field(default_factory=Counter)


class ConnectionGate:
    """Pending connections: per-address and global caps, the idle order, eviction.

    The caller (hub/guard.py) reports each connection's life: :meth:`admit` when
    it is made, :meth:`busy` when a request arrives, :meth:`idle` when an answer
    went out and the connection stays open, :meth:`forget` when it closed or
    became a WebSocket. Not thread-safe: everything runs on the event loop.
    """

    def __init__(self, limits: ConnectionLimits, counters: GateCounters | None = None) -> None:
        self.limits = limits
        self.counters = GateCounters() if counters is None else counters
        self.lingering = 0  # refused connections still open (hub/guard.py)
        self._reported_hits = 0
        self._reported_at = float("-inf")
        self._address: dict[Droppable, str] = {}
        self._per_address: Counter[str] = Counter()
        # address -> its idle connections -> since when; insertion order is idle-since order
        self._idle: dict[str, dict[Droppable, float]] = {}

    @property
    def pending(self) -> int:
        return len(self._address)

    def admit(self, conn: Droppable, address: str, now: float) -> Refusal | None:
        """Take a new connection (idle until its request comes), or say why not."""
        limits = self.limits
        if (
            limits.max_pending_per_address
            and self._per_address[address] >= limits.max_pending_per_address
            and not limits.is_exempt(address)
        ):
            self.counters.refused[Refusal.ADDRESS_FULL] += 1
            return Refusal.ADDRESS_FULL
        if limits.max_pending and self.pending >= limits.max_pending:
            victim = self._oldest_idle(now, address)
            if victim is None:
                self.counters.refused[Refusal.PENDING_FULL] += 1
                return Refusal.PENDING_FULL
            self.forget(victim)
            self.counters.closed[Closure.EVICTED] += 1
            victim.drop(Closure.EVICTED)
        self._address[conn] = address
        self._per_address[address] += 1
        self._idle.setdefault(address, {})[conn] = now
        return None

    def busy(self, conn: Droppable) -> None:
        """A request arrived: not idle (nor evictable) until it is answered."""
        self._not_idle(conn)

    def idle(self, conn: Droppable, now: float) -> None:
        """Answered, the connection stays open: idle (and last in line) from ``now``."""
        address = self._address.get(conn)
        if address is not None:
            self._not_idle(conn)
            self._idle.setdefault(address, {})[conn] = now

    def is_idle(self, conn: Droppable) -> bool:
        address = self._address.get(conn)
        return address is not None and conn in self._idle.get(address, {})

    def forget(self, conn: Droppable) -> None:
        """Closed, or now a WebSocket: no longer pending. Idempotent."""
        self._not_idle(conn)
        address = self._address.pop(conn, None)
        if address is not None:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

    def timed_out(self, conn: Droppable) -> None:
        """``conn`` stayed idle for ``handshake_timeout_s``: forget and close it."""
        if self.is_idle(conn):
            self.forget(conn)
            self.counters.closed[Closure.HANDSHAKE_TIMEOUT] += 1
            conn.drop(Closure.HANDSHAKE_TIMEOUT)

    def cap_report(self, now: float) -> str | None:
        """A warning for the log while caps are being hit: at most one a minute.

        Refusals and evictions are counted without limit in /metrics; the log
        only needs to say that it is happening, not every time.
        """
        refused, closed = self.counters.refused, self.counters.closed
        hits = sum(refused.values()) + closed[Closure.EVICTED]
        if hits == self._reported_hits or now - self._reported_at < CAP_REPORT_EVERY_S:
            return None
        since = hits - self._reported_hits
        self._reported_hits, self._reported_at = hits, now
        return (
            f"connection caps reached: {since} connection(s) refused or evicted since the last "
            f"report ({self.pending} pending now; ems_connections_refused_total, "
            "ems_connections_closed_total)"
        )

    def _not_idle(self, conn: Droppable) -> None:
        address = self._address.get(conn)
        if address is None:
            return
        idle = self._idle.get(address)
        if idle is not None:
            idle.pop(conn, None)
            if not idle:
                del self._idle[address]

    def _oldest_idle(self, now: float, newcomer: str) -> Droppable | None:
        """The connection to evict for a newcomer from ``newcomer``, if any.

        The oldest idle one of the address holding the most: taken at once from an
        address holding at least two more than the newcomer's (fair shares first),
        else only once idle for :data:`EVICT_AFTER_S`.
        """
        holds = self._per_address[newcomer]
        by_holding = sorted(self._idle, key=lambda address: -self._per_address[address])
        for address in by_holding:
            conn, since = next(iter(self._idle[address].items()))
            if self._per_address[address] >= holds + 2 or now - since >= EVICT_AFTER_S:
                return conn
        return None


class AddressCounts:
    """Open sockets per client address, under a global and a per-address cap."""

    def __init__(self, total_cap: int, per_address_cap: int, limits: ConnectionLimits) -> None:
        self.total_cap = total_cap
        self.per_address_cap = per_address_cap
        self._limits = limits
        self._counts: Counter[str] = Counter()
        self.total = 0

    def try_add(self, address: str) -> Refusal | None:
        if self.total_cap and self.total >= self.total_cap:
            return Refusal.DASHBOARDS_FULL
        if (
            self.per_address_cap
            and self._counts[address] >= self.per_address_cap
            and not self._limits.is_exempt(address)
        ):
            return Refusal.DASHBOARDS_ADDRESS_FULL
        self._counts[address] += 1
        self.total += 1
        return None

    def remove(self, address: str) -> None:
        self._counts[address] -= 1
        self.total -= 1
        if self._counts[address] <= 0:
            del self._counts[address]


@dataclass(frozen=True, slots=True)
class FdLimit:
    before: int
    soft: int
    hard: int


def raise_fd_limit() -> FdLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit (every socket is a descriptor).

    systemd starts services with a soft limit of 1024, and about that many idle
    sockets would then lock every other client out; the hard limit is what the
    administrator allows. Logged either way, so the number is in the log.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    raised = soft
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            raised = target
        except (ValueError, OSError) as err:
            logger.warning("cannot raise the file-descriptor limit from %d: %s", soft, err)
    if raised != soft:
        logger.info("file-descriptor limit raised from %d to %d (the hard limit)", soft, raised)
    else:
        logger.info("file-descriptor limit: %d (hard limit %s)", soft, _limit_text(hard))
    return FdLimit(before=soft, soft=raised, hard=hard)


def _limit_text(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)
