"""Who gets which frames, in which batches, on plain values (hub/cluster/routing.py)."""

from __future__ import annotations

from hub.cluster.routing import Batcher, WatchBook
from hub.cluster.wire import Code


def test_the_watch_book_forwards_only_watched_devices_until_they_expire() -> None:
    book = WatchBook("me")
    book.add("d1", "me", 100.0)
    assert not book.wanted("d1")  # our own dashboards get frames first-hand
    book.add("d1", "b", 100.0)
    book.add("d2", "c", 50.0)
    assert book.wanted("d1")
    assert book.wanted("d2")
    assert not book.wanted("d3")
    assert book.expire(60.0) == 1
    assert not book.wanted("d2")
    book.remove("d1", "b")
    assert book.devices() == []


def test_frames_are_batched_per_device_in_order() -> None:
    batcher = Batcher("me")
    for i in range(3):
        batcher.add("d1", 1, Code.READING, f"a{i}")
        batcher.add("d2", 4, Code.READING, f"b{i}")
    out = batcher.take()
    assert [(o.device_id, [f for _, f in o.message.items]) for o in out] == [
        ("d1", ["a0", "a1", "a2"]),
        ("d2", ["b0", "b1", "b2"]),
    ]
    assert len(batcher) == 0


def test_a_stored_status_is_a_message_of_its_own_at_its_place() -> None:
    batcher = Batcher("me")
    batcher.add("d", 1, Code.READING, "r1")
    batcher.add_status("d", 1, [(Code.STATUS, "off"), (Code.SNAP_LAST, "r1")], 3)
    batcher.add("d", 2, Code.READING, "r2")
    out = batcher.take()
    assert [(o.stored, o.message.epoch, len(o.message.items)) for o in out] == [
        (False, 1, 1),
        (True, 1, 2),
        (False, 2, 1),
    ]
    assert out[1].version == 3


def test_the_batcher_is_bounded() -> None:
    batcher = Batcher("me", max_frames=2)
    assert batcher.add("d", 1, Code.READING, "1")
    assert batcher.add("d", 1, Code.READING, "2")
    assert not batcher.add("d", 1, Code.READING, "3")
    assert batcher.counters.frames_dropped == 1
