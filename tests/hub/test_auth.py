from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.auth import (
    AuthFailure,
    BadToken,
    MissingToken,
    TokenBook,
    ViewerGate,
    bearer_token,
    hash_token,
    new_token,
)
from hub.storage.base import TokenRecord

NOW = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def book(**tokens: list[str]) -> TokenBook:
    return TokenBook.from_records(
        TokenRecord(device, hash_token(token), NOW) for device, ts in tokens.items() for token in ts
    )


def test_new_tokens_are_long_random_and_distinct() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) >= 43 for t in tokens)  # 32 bytes, base64url


def test_hash_is_stable_and_hides_the_token() -> None:
    token = new_token()
    assert hash_token(token) == hash_token(token)
    assert token not in hash_token(token)
    assert hash_token(token) != hash_token(token + "x")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


def test_verify_matrix() -> None:
    mine, second, theirs = new_token(), new_token(), new_token()
    tokens = book(ems_001=[mine, second], ems_002=[theirs])
    assert tokens.verify("ems_001", mine) == hash_token(mine)
    assert tokens.verify("ems_001", second) == hash_token(second)
    with pytest.raises(MissingToken) as missing:
        tokens.verify("ems_001", None)
    assert missing.value.failure is AuthFailure.MISSING
    with pytest.raises(BadToken):
        tokens.verify("ems_001", theirs)  # another device's token
    with pytest.raises(BadToken):
        tokens.verify("ems_001", new_token())  # unknown
    with pytest.raises(BadToken):
        tokens.verify("ems_003", mine)  # a device without tokens
    revoked = book(ems_002=[theirs])
    with pytest.raises(BadToken):
        revoked.verify("ems_001", mine)


def test_holds_follows_revocation() -> None:
    token = new_token()
    assert book(ems_001=[token]).holds("ems_001", hash_token(token))
    assert not TokenBook.empty().holds("ems_001", hash_token(token))


def test_viewer_gate() -> None:
    assert ViewerGate(None).allows(None)
    assert not ViewerGate(None).required
    gate = ViewerGate("s3cret")
    assert gate.required
    assert gate.allows("s3cret")
    assert not gate.allows("s3cre")
    assert not gate.allows(None)
