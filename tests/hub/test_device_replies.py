from __future__ import annotations

import json

from hub.device_replies import MAX_PENDING_ERRORS, AckBook


def test_committed_seqs_coalesce_into_ranges() -> None:
    book = AckBook()
    book.add_committed([5, 3, 4])
    book.add_committed([9, 10, 4])
    frames, count = book.take()
    assert [json.loads(f) for f in frames] == [{"type": "ack", "ranges": [[3, 5], [9, 10]]}]
    assert count == 5
    assert not book
    assert book.take() == ([], 0)


def test_a_rejected_seq_gets_an_error_then_an_ack() -> None:
    book = AckBook()
    book.add_committed([1, 2])
    book.add_rejected(3, "battery.soc_pct: must be <= 100")
    frames, count = book.take()
    assert [json.loads(f) for f in frames] == [
        {"type": "error", "seq": 3, "reason": "battery.soc_pct: must be <= 100"},
        {"type": "ack", "ranges": [[1, 3]]},
    ]
    assert count == 3


def test_pending_errors_are_bounded_but_their_seqs_are_still_acked() -> None:
    book = AckBook()
    for seq in range(MAX_PENDING_ERRORS + 50):
        book.add_rejected(seq, "bad")
    frames, count = book.take()
    assert len(frames) == MAX_PENDING_ERRORS + 1
    assert json.loads(frames[-1]) == {"type": "ack", "ranges": [[0, MAX_PENDING_ERRORS + 49]]}
    assert count == MAX_PENDING_ERRORS + 50
