from __future__ import annotations

from hub.fanout import FeedPolicy, FeedQueue


def test_frames_come_out_in_order_each_once() -> None:
    queue = FeedQueue(FeedPolicy(max_frames=10, max_bytes=10_000))
    for i in range(5):
        assert queue.push(f"f{i}", now=0.0).dropped == 0
    assert [queue.pop() for _ in range(6)] == ["f0", "f1", "f2", "f3", "f4", None]


def test_overflow_drops_the_oldest_frames_first() -> None:
    queue = FeedQueue(FeedPolicy(max_frames=3, max_bytes=10_000))
    drops = [queue.push(f"f{i}", now=0.0).dropped for i in range(5)]
    assert drops == [0, 0, 0, 1, 1]
    assert list(queue.frames) == ["f2", "f3", "f4"]


def test_byte_bound_counts_what_sits_in_the_transport() -> None:
    queue = FeedQueue(FeedPolicy(max_frames=100, max_bytes=100))
    queue.push("a" * 40, now=0.0, in_transport=0)
    queue.push("b" * 40, now=0.0, in_transport=0)
    # 80 queued + 50 in the transport > 100: the oldest goes.
    result = queue.push("c" * 10, now=0.0, in_transport=50)
    assert result.dropped == 1
    assert list(queue.frames) == ["b" * 40, "c" * 10]
    assert queue.queued_bytes == 50


def test_the_newest_frame_is_kept_even_when_the_transport_alone_is_over() -> None:
    queue = FeedQueue(FeedPolicy(max_frames=100, max_bytes=100))
    queue.push("old", now=0.0)
    result = queue.push("new", now=0.0, in_transport=1_000)
    assert result.dropped == 1
    assert list(queue.frames) == ["new"]


def test_staying_behind_for_stall_s_means_too_slow() -> None:
    queue = FeedQueue(FeedPolicy(max_frames=2, max_bytes=10_000, stall_s=5.0))
    results = [queue.push(f"f{i}", now=float(i)) for i in range(9)]
    assert [r.too_slow for r in results] == [False] * 7 + [True] * 2
    assert queue.behind_since == 2.0  # the first drop


def test_catching_up_resets_the_stall_clock() -> None:
    queue = FeedQueue(FeedPolicy(max_frames=2, max_bytes=10_000, stall_s=5.0))
    for i in range(4):
        queue.push(f"f{i}", now=float(i))
    assert queue.behind_since == 2.0
    while queue.pop() is not None:
        pass
    assert queue.behind_since is None
    assert not queue.push("late", now=100.0).too_slow
