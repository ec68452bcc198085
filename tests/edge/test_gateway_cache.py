"""The gateway's register cache on plain values: whole, fresh ranges only."""

from __future__ import annotations

from drivers.registers import RegisterType
from edge.gateway_cache import CacheKey, RegisterCache
from edge.gateway_limits import TokenBucket

KEY = CacheKey("rs485", 1, RegisterType.HOLDING)


def test_a_range_read_is_answered_while_fresh() -> None:
    cache = RegisterCache()
    cache.record(KEY, 100, (1, 2, 3, 4), at=10.0)
    assert cache.lookup(KEY, 101, 2, now=12.0, max_age_s=5.0) == (2, 3)
    assert cache.lookup(KEY, 100, 4, now=15.0, max_age_s=5.0) == (1, 2, 3, 4)
    assert cache.lookup(KEY, 100, 4, now=15.1, max_age_s=5.0) is None  # too old
    assert (cache.hits, cache.misses) == (2, 1)


def test_a_range_with_one_register_never_read_is_a_miss() -> None:
    cache = RegisterCache()
    cache.record(KEY, 100, (1, 2), at=10.0)
    cache.record(KEY, 103, (4,), at=10.0)
    assert cache.lookup(KEY, 100, 4, now=10.0, max_age_s=5.0) is None  # 102 missing
    assert cache.lookup(KEY, 99, 2, now=10.0, max_age_s=5.0) is None
    assert cache.lookup(KEY, 100, 0, now=10.0, max_age_s=5.0) is None


def test_the_oldest_register_of_a_range_decides() -> None:
    cache = RegisterCache()
    cache.record(KEY, 100, (1, 2), at=10.0)
    cache.record(KEY, 102, (3, 4), at=14.0)
    assert cache.lookup(KEY, 100, 4, now=15.0, max_age_s=5.0) == (1, 2, 3, 4)
    assert cache.lookup(KEY, 100, 4, now=15.5, max_age_s=5.0) is None
    assert cache.lookup(KEY, 102, 2, now=15.5, max_age_s=5.0) == (3, 4)
    cache.record(KEY, 100, (9,), at=15.5)  # a newer answer replaces the value
    assert cache.lookup(KEY, 100, 1, now=15.5, max_age_s=5.0) == (9,)


def test_tables_units_and_buses_are_apart() -> None:
    cache = RegisterCache()
    cache.record(KEY, 100, (1,), at=10.0)
    for other in (
        CacheKey("rs485", 1, RegisterType.INPUT),
        CacheKey("rs485", 2, RegisterType.HOLDING),
        CacheKey("lan", 1, RegisterType.HOLDING),
    ):
        assert cache.lookup(other, 100, 1, now=10.0, max_age_s=5.0) is None
    assert cache.registers(KEY) == 1


def test_written_registers_are_forgotten() -> None:
    cache = RegisterCache()
    cache.record(KEY, 100, (1, 2, 3), at=10.0)
    cache.forget(KEY, 101, 1)
    cache.forget(CacheKey("lan", 9, RegisterType.HOLDING), 0, 5)  # nothing there: nothing
    assert cache.lookup(KEY, 100, 3, now=10.0, max_age_s=5.0) is None
    assert cache.lookup(KEY, 102, 1, now=10.0, max_age_s=5.0) == (3,)
    assert cache.registers(KEY) == 2


def test_a_token_bucket_lets_a_burst_through_then_paces() -> None:
    bucket = TokenBucket(rate=10.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == 0.1  # the fourth waits one token's time
    assert round(bucket.take(0.0), 9) == 0.2  # and the fifth two
    # After waiting its turn (0.2 s), the debt is paid; a second later the burst is back.
    assert [bucket.take(1.2) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(1.2) > 0
