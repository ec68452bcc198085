"""Device tokens and the viewer token (docs/protocol.md, "Doors").

A device token is 32 random bytes (``secrets.token_urlsafe``): with that much
entropy a plain SHA-256 is as good as a slow password hash, and it keeps the
check cheap enough to run on every handshake. Only the hash is stored
(``Storage.add_token``); comparisons use ``hmac.compare_digest`` so the time a
check takes says nothing about how much of a guess was right.

The hub checks a handshake against a ``TokenBook``, an in-memory view of the
stored tokens refreshed about once a second, so revocation from another
process (``ems hub token revoke``) takes effect within about a second. A token
the book does not know may have been added a moment ago (``ems hub token add``
prints it once committed, and the README runs the agent right after): before
refusing, the hub asks storage whether the tokens changed since the book was
loaded (one small query) and reloads if so (hub/runtime.py). Two guards keep a
flood of bad handshakes from becoming a flood of queries: ``RecentMisses``
remembers refused tokens until the book's generation moves, and
``LookupBudget`` caps those look-ups per second; past it a handshake is judged
on the book alone, which catches up within a second anyway.

Exceptions::

    AuthError                  a handshake is refused (HTTP 403 on the upgrade)
     ├── MissingToken          no ``Authorization: Bearer`` header (or ``?token=``)
     └── BadToken              unknown, revoked or another device's token
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hub.storage.base import TokenRecord

TOKEN_BYTES = 32  # 256 bits of entropy


class AuthFailure(enum.StrEnum):
    """Why a handshake was refused; a metrics label."""

    MISSING = "missing_token"
    BAD = "bad_token"
    BAD_DEVICE_ID = "bad_device_id"
    BAD_ORIGIN = "bad_origin"  # dashboard door: a browser on another site (hub/viewer_access.py)
    THROTTLED = "throttled"  # too many wrong viewer tokens from its address (hub/guess_budget.py)


class AuthError(Exception):
    """A handshake is refused."""

    failure: AuthFailure = AuthFailure.BAD

    def __init__(self, device_id: str, detail: str) -> None:
        super().__init__(f"{device_id}: {detail}")
        self.device_id = device_id
        self.detail = detail


class MissingToken(AuthError):
    failure = AuthFailure.MISSING


class BadToken(AuthError):
    failure = AuthFailure.BAD


def new_token() -> str:
    """A fresh device token, URL-safe, shown to the operator once."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The form a token is stored and compared in (hex SHA-256)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, if any."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


@dataclass(frozen=True, slots=True)
class TokenBook:
    """An immutable snapshot of the live device tokens: device id -> token hashes."""

    hashes: Mapping[str, frozenset[str]]

    @classmethod
    def from_records(cls, records: Iterable[TokenRecord]) -> TokenBook:
        book: dict[str, set[str]] = {}
        for record in records:
            book.setdefault(record.device_id, set()).add(record.token_hash)
        return cls({device: frozenset(hashes) for device, hashes in book.items()})

    @classmethod
    def empty(cls) -> TokenBook:
        return cls({})

    def verify(self, device_id: str, token: str | None) -> str:
        """The matching token hash for ``device_id``; raises ``AuthError`` otherwise.

        Every stored hash of the device is compared (no early exit), each in
        constant time; another device's token simply matches none of them.
        """
        if token is None:
            raise MissingToken(device_id, "no bearer token")
        candidate = hash_token(token)
        match: str | None = None
        for stored in self.hashes.get(device_id, frozenset()):
            if hmac.compare_digest(stored, candidate):
                match = stored
        if match is None:
            raise BadToken(device_id, "unknown, revoked or another device's token")
        return match

    def holds(self, device_id: str, token_hash: str) -> bool:
        """Whether that token is still live (a revoked one closes its socket)."""
        return token_hash in self.hashes.get(device_id, frozenset())


@dataclass(frozen=True, slots=True)
class ViewerGate:
    """The optional viewer token of the dashboard door and the API (hub/viewer_access.py)."""

    token: str | None

    @property
    def required(self) -> bool:
        return bool(self.token)

    def allows(self, offered: str | None) -> bool:
        if not self.token:
            return True
        if offered is None:
            return False
        return hmac.compare_digest(offered.encode("utf-8"), self.token.encode("utf-8"))


@dataclass(slots=True)
class RecentMisses:
    """Tokens refused since the book was last loaded: a bounded negative cache.

    Keyed by device id and token hash, valued by the book's generation at the
    refusal: once the book moves to another generation an entry no longer
    holds (the token may have been added since). The oldest entry is dropped
    past ``capacity``, so a scan of random tokens costs bounded memory.
    """

    capacity: int = 4096
    _entries: OrderedDict[tuple[str, str], int | None] = field(default_factory=OrderedDict)

    def holds(self, device_id: str, token_hash: str, generation: int | None) -> bool:
        """Whether that token was already refused under this generation of the book."""
        key = (device_id, token_hash)
        if key not in self._entries:
            return False
        if self._entries[key] != generation:
            del self._entries[key]
            return False
        return True

    def add(self, device_id: str, token_hash: str, generation: int | None) -> None:
        key = (device_id, token_hash)
        self._entries[key] = generation
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(slots=True)
class LookupBudget:
    """A token bucket: at most ``burst`` storage look-ups at once, ``per_s`` a second after."""

    per_s: float = 5.0
    burst: float = 10.0
    _tokens: float | None = None
    _at: float = 0.0

    def take(self, now: float) -> bool:
        """Spend one look-up at monotonic time ``now``; False: none left, refuse from memory."""
        if self._tokens is None:
            self._tokens = self.burst
        else:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_s)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
