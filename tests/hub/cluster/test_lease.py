"""Ownership decisions, on plain values (hub/cluster/lease.py)."""

from __future__ import annotations

from hub.cluster.lease import LeasePolicy, Renewal, holds, superseded


def test_a_lease_ends_early_on_this_hubs_clock() -> None:
    policy = LeasePolicy(5.0)
    assert policy.renew_every_s < policy.lease_s / 2
    assert 100.0 < policy.valid_until(100.0) < 105.0
    assert policy.lease_ms == 5000


def test_a_session_holds_while_its_epoch_is_highest_and_its_lease_runs() -> None:
    assert holds(epoch=3, fence=3, lease_until=10.0, now=9.0, redis_up=True)
    assert not holds(epoch=3, fence=4, lease_until=10.0, now=9.0, redis_up=True)
    assert not holds(epoch=3, fence=3, lease_until=10.0, now=10.5, redis_up=True)


def test_without_redis_a_hub_keeps_its_sessions_unless_it_heard_of_a_newer_claim() -> None:
    assert holds(epoch=3, fence=3, lease_until=10.0, now=99.0, redis_up=False)
    assert not holds(epoch=3, fence=5, lease_until=10.0, now=9.0, redis_up=False)


def test_a_newer_claim_wins_an_older_never_registers() -> None:
    assert not superseded(5, registered_epoch=4, fence=5)
    assert superseded(4, registered_epoch=5, fence=5)
    assert superseded(4, registered_epoch=None, fence=5)
    assert not superseded(5, registered_epoch=5, fence=5)  # local claims while Redis is down


def test_renewal_answers() -> None:
    assert Renewal.of(1) is Renewal.HELD
    assert Renewal.of(0) is Renewal.LOST
