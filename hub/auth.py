"""Device tokens and the viewer token (PROTOCOL.md, "Doors").

A device token is 32 random bytes (``secrets.token_urlsafe``): with that much
entropy a plain SHA-256 is as good as a slow password hash, and it keeps the
check cheap enough to run on every handshake. Only the hash is stored
(``Storage.add_token``); comparisons use ``hmac.compare_digest`` so the time a
check takes says nothing about how much of a guess was right.

The hub never reads tokens from storage on a handshake: it keeps a
``TokenBook``, an in-memory view refreshed about once a second, so that
``ems hub token add/revoke`` run from another process takes effect quickly and
a flood of handshakes never becomes a flood of queries.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hub.storage.base import TokenRecord

TOKEN_BYTES = 32  # 256 bits of entropy


class AuthFailure(enum.StrEnum):
    """Why a handshake was refused; a metrics label."""

    MISSING = "missing_token"
    BAD = "bad_token"
    BAD_DEVICE_ID = "bad_device_id"
    BAD_ORIGIN = "bad_origin"  # dashboard door: a browser on another site (hub/viewer_access.py)


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
