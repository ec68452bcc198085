"""Ack ranges: sets of seqs to ``[[a, b], ...]`` (docs/protocol.md, "Hub -> device")."""

from __future__ import annotations

from collections.abc import Iterable


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Collapse seqs into sorted, disjoint, inclusive ``(first, last)`` ranges.

    >>> seq_ranges([5, 3, 4, 9, 10, 4])
    [(3, 5), (9, 10)]
    """
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def range_contains(ranges: Iterable[tuple[int, int]], seq: int) -> bool:
    """Whether ``seq`` lies in one of the inclusive ranges."""
    return any(first <= seq <= last for first, last in ranges)
