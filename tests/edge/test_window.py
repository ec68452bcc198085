"""The send window and batch packing, on plain values."""

from __future__ import annotations

import json

import pytest

from edge.window import SendWindow, pack_batches
from telemetry import MAX_FRAME_BYTES


def test_batches_hold_at_most_1000_items_in_order() -> None:
    wires = [json.dumps({"seq": i}) for i in range(2500)]
    frames = pack_batches(wires)
    assert [count for _, count in frames] == [1000, 1000, 500]
    items = [item for frame, _ in frames for item in json.loads(frame)["items"]]
    assert [item["seq"] for item in items] == list(range(2500))
    assert all(json.loads(frame)["type"] == "batch" for frame, _ in frames)


def test_batches_stay_under_the_frame_limit_counting_utf8_bytes() -> None:
    # 2,000-byte readings of two-byte characters: 1000 of them would be 4 MB.
    wires = [json.dumps({"seq": i, "s": "é" * 1000}, ensure_ascii=False) for i in range(1000)]
    frames = pack_batches(wires)
    assert len(frames) > 1
    assert all(len(frame.encode()) < MAX_FRAME_BYTES for frame, _ in frames)
    assert sum(count for _, count in frames) == 1000
    with pytest.raises(ValueError, match="does not fit"):
        pack_batches(["x" * MAX_FRAME_BYTES])
    assert pack_batches([]) == []


def test_acks_remove_only_what_is_in_flight() -> None:
    window = SendWindow(capacity=10, ack_timeout_s=5.0)
    window.mark_sent([3, 4, 5, 8], now=0.0)
    assert window.room == 6
    assert window.ack([(0, 4), (7, 1_000_000)]) == [3, 4, 8]
    assert list(window.ack([(3, 8)])) == [5]
    assert len(window) == 0


def test_expired_seqs_are_resent_with_a_growing_timeout_until_an_ack() -> None:
    window = SendWindow(capacity=10, ack_timeout_s=1.0, max_ack_timeout_s=3.0)
    window.mark_sent([1, 2], now=0.0)
    window.mark_sent([3], now=0.5)
    assert window.next_expiry() == 1.0
    assert window.expired(0.9) == []
    assert window.expired(1.0) == [1, 2]
    assert window.ack_timeout_s == 2.0
    window.mark_sent([1, 2], now=1.0)  # re-sent: now the newest
    assert window.expired(2.5) == [3]
    assert window.ack_timeout_s == 3.0  # capped
    window.mark_sent([3], now=2.5)
    assert window.expired(3.9) == []
    assert window.expired(4.0) == [1, 2]
    window.ack([(1, 1)])
    assert window.ack_timeout_s == 1.0


def test_cursor_and_rescan() -> None:
    window = SendWindow(capacity=3, ack_timeout_s=1.0)
    window.advance(41)
    window.advance(7)
    assert window.cursor == 41
    window.rescan()
    assert window.cursor == -1
    window.mark_sent([1, 2, 3, 3], now=0.0)
    assert (window.room, 2 in window, 9 in window) == (0, True, False)
    window.forget([2, 9])
    assert window.room == 1
