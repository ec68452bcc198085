"""How many wrong viewer tokens one client address may offer: a failure budget.

A viewer token is chosen by the operator and may be short enough to guess.
Every wrong token offered (``POST /api/session``, the ``/api/`` routes, the
dashboard door) costs its client address one unit of the budget; once an
address has spent it within ``window_s``, every token it offers is refused
without being compared until the window has passed: HTTP 429 with
``Retry-After`` on the API and the sign-in, 403 at the dashboard door
(docs/security.md, "Viewer access"). A right token costs nothing and clears
nothing. Loopback is held to it like any address (a proxy on the same machine
would otherwise open a way around it). The book keeps at most ``capacity``
addresses, dropping the one that failed least recently, so a scan from many
addresses costs bounded memory.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

DEFAULT_FAILURES: Final = 10
DEFAULT_WINDOW_S: Final = 60.0
DEFAULT_CAPACITY: Final = 10_000


@dataclass(slots=True)
class _Spent:
    since: float  # when this window's first failure was
    failures: int


@dataclass(slots=True)
class GuessCounts:
    """For /metrics; created by ``HubMetrics`` (hub/metrics.py) and handed to the budget."""

    wrong: int = 0  # wrong tokens counted
    throttled: int = 0  # tokens refused without a comparison


@dataclass(slots=True)
class GuessBudget:
    """Wrong viewer tokens per client address and window; ``failures`` 0 turns it off."""

    failures: int = DEFAULT_FAILURES
    window_s: float = DEFAULT_WINDOW_S
    capacity: int = DEFAULT_CAPACITY
    counts: GuessCounts = field(default_factory=GuessCounts)
    _book: OrderedDict[str, _Spent] = field(default_factory=OrderedDict)

    def retry_after(self, address: str, now: float) -> int | None:
        """Seconds until ``address`` may offer a token again, or None when it may now.

        A None answer does not spend anything; call :meth:`failed` when the token
        then proves wrong. A number counts one throttled attempt.
        """
        if self.failures <= 0:
            return None
        spent = self._book.get(address)
        if spent is None:
            return None
        left = spent.since + self.window_s - now
        if left <= 0:
            del self._book[address]
            return None
        if spent.failures < self.failures:
            return None
        self.counts.throttled += 1
        return max(1, math.ceil(left))

    def failed(self, address: str, now: float) -> None:
        """One wrong token from ``address``."""
        self.counts.wrong += 1
        if self.failures <= 0:
            return
        spent = self._book.get(address)
        if spent is None or now - spent.since >= self.window_s:
            spent = _Spent(since=now, failures=0)
            self._book[address] = spent
        spent.failures += 1
        self._book.move_to_end(address)
        while len(self._book) > self.capacity:
            self._book.popitem(last=False)

    @property
    def addresses(self) -> int:
        """Addresses in the book (spending or throttled), for /metrics."""
        return len(self._book)
