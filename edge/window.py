"""What the uplink has in flight, and what it sends next (pure: no sockets, no database).

docs/protocol.md, "Hub -> device": the hub acks ranges of seqs once committed, may
drop what it has not acked, and the edge re-sends whatever stays unacked. The
:class:`SendWindow` keeps, for one connection:

- the seqs sent and not yet acked, in the order they were (last) sent, with
  when; its capacity bounds how much is in flight, and so memory on both ends
  (only seqs are kept: a re-send reads the reading back from the outbox);
- a cursor into the outbox: every stamped reading with ``seq <= cursor`` has
  been sent on this connection (and is in flight or acked), so the backlog
  continues after it;
- the ack timeout: in-flight seqs older than it are sent again. It doubles,
  up to a cap, each time it expires with no ack in between, so a hub whose
  storage is down is not flooded with re-sends; any ack brings it back.

A reconnect starts a new window: nothing acked on the old connection can be
acked on the new one, so everything still buffered is sent again, oldest first.

:func:`pack_batches` cuts readings into ``batch`` frames within both limits of
the protocol: at most 1000 items, and a frame under 1 MiB (docs/protocol.md, "A batch").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from telemetry import MAX_BATCH_ITEMS, MAX_FRAME_BYTES

__all__ = ["BATCH_BYTES", "SendWindow", "pack_batches"]

# Room below the hub's 1 MiB limit for the envelope and multi-byte characters.
BATCH_BYTES: Final = MAX_FRAME_BYTES - 64 * 1024
_ENVELOPE: Final = '{"type":"batch","items":[]}'


def pack_batches(
    wires: Sequence[str], *, max_items: int = MAX_BATCH_ITEMS, max_bytes: int = BATCH_BYTES
) -> list[tuple[str, int]]:
    """Batch frames holding ``wires`` (readings as JSON text) in order, each with its item count.

    Sizes are counted in UTF-8 bytes. A single reading too large for any frame
    raises ``ValueError`` (no reading the sampler builds comes near it).
    """
    frames: list[tuple[str, int]] = []
    items: list[str] = []
    size = len(_ENVELOPE)
    for wire in wires:
        # and its comma; an ASCII string's length is its size, without encoding a copy
        length = (len(wire) if wire.isascii() else len(wire.encode())) + 1
        if length + len(_ENVELOPE) > max_bytes:
            raise ValueError(f"a reading of {length} bytes does not fit in a frame")
        if items and (len(items) == max_items or size + length > max_bytes):
            frames.append(_frame(items))
            items, size = [], len(_ENVELOPE)
        items.append(wire)
        size += length
    if items:
        frames.append(_frame(items))
    return frames


def _frame(items: list[str]) -> tuple[str, int]:
    return '{"type":"batch","items":[' + ",".join(items) + "]}", len(items)


class SendWindow:
    """In-flight seqs of one connection, the backlog cursor, and the ack timeout."""

    def __init__(
        self, *, capacity: int, ack_timeout_s: float, max_ack_timeout_s: float | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.base_ack_timeout_s = ack_timeout_s
        self.max_ack_timeout_s = max_ack_timeout_s or 8 * ack_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.cursor = -1
        # seq -> when last sent; dict order is send order (a re-send moves it to the end).
        self._sent: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._sent)

    def __contains__(self, seq: object) -> bool:
        return seq in self._sent

    def in_flight(self) -> list[int]:
        """The seqs sent and not acked, in send order."""
        return list(self._sent)

    @property
    def room(self) -> int:
        return max(0, self.capacity - len(self._sent))

    def mark_sent(self, seqs: Iterable[int], now: float) -> None:
        for seq in seqs:
            self._sent.pop(seq, None)
            self._sent[seq] = now

    def advance(self, seq: int) -> None:
        """The backlog was read up to ``seq``."""
        self.cursor = max(self.cursor, seq)

    def rescan(self) -> None:
        """Read the backlog from the start again (held readings were just stamped)."""
        self.cursor = -1

    def ack(self, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """Remove and return the in-flight seqs the ranges cover.

        Seqs not in flight are ignored: acked before, or never sent on this
        connection, so an ack for them proves nothing about what is buffered.
        """
        acked: list[int] = []
        for first, last in ranges:
            if last < first:
                continue
            if last - first < len(self._sent):
                candidates: Iterable[int] = range(first, last + 1)
            else:
                candidates = [seq for seq in self._sent if first <= seq <= last]
            for seq in candidates:
                if self._sent.pop(seq, None) is not None:
                    acked.append(seq)
        if acked:
            self.ack_timeout_s = self.base_ack_timeout_s
        return acked

    def forget(self, seqs: Iterable[int]) -> None:
        """Stop tracking seqs that are no longer buffered (dropped when the buffer was full)."""
        for seq in seqs:
            self._sent.pop(seq, None)

    def expired(self, now: float) -> list[int]:
        """In-flight seqs unacked for longer than the ack timeout, oldest first.

        Returning some doubles the timeout (capped) until the next ack.
        """
        deadline = now - self.ack_timeout_s
        due: list[int] = []
        for seq, sent_at in self._sent.items():
            if sent_at > deadline:
                break
            due.append(seq)
        if due:
            self.ack_timeout_s = min(self.max_ack_timeout_s, self.ack_timeout_s * 2)
        return due

    def next_expiry(self) -> float | None:
        """When the oldest in-flight seq expires; None when nothing is in flight."""
        for sent_at in self._sent.values():
            return sent_at + self.ack_timeout_s
        return None
