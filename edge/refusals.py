"""Readings the hub refuses without acking: counted, and given up after a few refusals.

docs/protocol.md, "Hub -> device": an error frame for a seq is followed by an
ack covering it, so a refused reading leaves the outbox like any other. A hub
that refuses a reading and never acks it would have the uplink re-send it after
every ack timeout and every reconnect, for ever. :class:`Refusals` counts the
error frames per seq since its last send was acked; at ``limit`` the uplink
stops re-sending it and deletes it from the outbox, counted and logged: the hub
said three times it will never store it.

Pure logic, bounded memory: only seqs refused and not acked yet are kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

REFUSALS_BEFORE_GIVING_UP: Final = 3


@dataclass(slots=True)
class Refusals:
    limit: int = REFUSALS_BEFORE_GIVING_UP
    max_entries: int = 10_000  # a window's worth; a flood of error frames forgets the oldest
    _counts: dict[int, int] = field(default_factory=dict)

    def refused(self, seq: int) -> bool:
        """One more error frame for ``seq``; True when it is time to give it up."""
        count = self._counts.pop(seq, 0) + 1
        if count >= self.limit:
            return True
        if len(self._counts) >= self.max_entries:
            for old in list(self._counts)[: self.max_entries // 2]:  # insertion order: oldest
                del self._counts[old]
        self._counts[seq] = count
        return False

    def acked(self, seqs: Iterable[int]) -> None:
        """The hub acked these: refused or not, they are settled."""
        if self._counts:
            for seq in seqs:
                self._counts.pop(seq, None)

    def __len__(self) -> int:
        return len(self._counts)
