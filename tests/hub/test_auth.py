from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.auth import (
    AuthFailure,
    BadToken,
    LookupBudget,
    MissingToken,
    RecentMisses,
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


def test_recent_misses_hold_until_the_generation_moves_and_stay_bounded() -> None:
    misses = RecentMisses(capacity=3)
    misses.add("ems_001", "h1", 7)
    assert misses.holds("ems_001", "h1", 7)
    assert not misses.holds("ems_002", "h1", 7)
    assert not misses.holds("ems_001", "h1", 8)  # the tokens changed: look again
    assert not misses.holds("ems_001", "h1", 7)  # and the stale entry is gone
    for n in range(10):
        misses.add("ems_001", f"scan{n}", 7)
    assert len(misses) == 3
    assert misses.holds("ems_001", "scan9", 7)
    assert not misses.holds("ems_001", "scan0", 7)


def test_lookup_budget_allows_a_burst_then_its_rate() -> None:
    budget = LookupBudget(per_s=2.0, burst=3.0)
    assert [budget.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert not budget.take(100.4)  # 0.8 of a look-up earned
    assert budget.take(100.6)
    assert not budget.take(100.6)
    assert [budget.take(200.0) for _ in range(4)] == [True, True, True, False]  # capped at burst
