"""The viewer-token failure budget (hub/guess_budget.py) as pure logic."""

from __future__ import annotations

from hub.guess_budget import GuessBudget


def test_an_address_waits_once_it_spent_its_budget_and_others_do_not() -> None:
    budget = GuessBudget(failures=3, window_s=60.0)
    for second in range(3):
        assert budget.retry_after("10.0.0.1", 100.0 + second) is None
        budget.failed("10.0.0.1", 100.0 + second)
    assert budget.retry_after("10.0.0.1", 103.0) == 57
    assert budget.retry_after("10.0.0.2", 103.0) is None
    assert budget.retry_after("10.0.0.1", 159.5) == 1
    assert budget.retry_after("10.0.0.1", 160.0) is None  # the window has passed
    assert budget.addresses == 0
    assert (budget.counts.wrong, budget.counts.throttled) == (3, 2)


def test_zero_turns_it_off_but_still_counts() -> None:
    budget = GuessBudget(failures=0)
    for _ in range(100):
        budget.failed("10.0.0.1", 1.0)
    assert budget.retry_after("10.0.0.1", 1.0) is None
    assert budget.counts.wrong == 100
    assert budget.addresses == 0


def test_the_book_is_bounded_dropping_the_least_recent_failure() -> None:
    budget = GuessBudget(failures=2, window_s=60.0, capacity=100)
    budget.failed("spent", 0.0)
    budget.failed("spent", 0.0)
    for index in range(99):
        budget.failed(f"10.1.{index // 256}.{index % 256}", 1.0)
    assert budget.retry_after("spent", 2.0) == 58  # still held: 100 addresses fit
    budget.failed("10.9.9.9", 3.0)
    assert budget.addresses == 100
    assert budget.retry_after("spent", 3.0) is None  # the oldest was dropped
