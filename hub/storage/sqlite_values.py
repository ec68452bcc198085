"""How SQLite holds ``extra`` and the phase lists (schema version 5), and reads both forms.

Pure logic. A reading's ``extra``
repeats its names in every reading of a device; they were two thirds of a
stored row and pushed every row of a full reading past what a 4 KiB page keeps
in place, so each took an overflow page of its own (docs/benchmarks.md,
"Storage size"). From schema version 5 a row's ``extra`` is a BLOB: the id of
its list of names in the ``extra_names`` table (each list stored once, as a
JSON array) and the values in that order, packed (hub/storage/packed.py). A
phase list is a BLOB of its packed values. ``devices`` stays JSON text (a
reading's own shape, rarely sent).

Rows written before version 5 hold JSON text in those columns, and are read as
they are: a column's value is a ``str`` (JSON) or ``bytes`` (packed), so no
stored row is rewritten by the upgrade.

The writer's path packs the values when a reading is queued and leaves the id
to its transaction (:class:`PendingExtra`): the lists, their ids and when a list
is deleted are in :mod:`hub.storage.name_lists`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.storage.name_lists import NameLists, Names
from hub.storage.packed import pack_numbers, read_varint, unpack_extra, unpack_numbers, varint
from hub.storage.schema import EXTRA_NAMES

__all__ = [
    "PendingExtra",
    "extra_from_sqlite",
    "extra_to_sqlite",
    "list_from_sqlite",
    "list_to_sqlite",
    "packed_ids",
]


@dataclass(frozen=True, slots=True)
class PendingExtra:
    """A prepared row's ``extra``: its names, and its values packed, waiting for the
    list's id in the write transaction (:mod:`hub.storage.name_lists`)."""

    names: Names
    values: bytes  # packed (hub/storage/packed.py)

    def with_id(self, names_id: int) -> bytes:
        """The stored blob: the list's id, then the values (``packed.pack_extra``)."""
        return varint(names_id) + self.values


def extra_to_sqlite(extra: Mapping[str, float], lists: NameLists) -> PendingExtra:
    """``extra`` as the row will hold it, once its list has an id; its names the tuple
    ``lists`` holds for them, when it does."""
    return PendingExtra(lists.shared(tuple(extra)), pack_numbers(list(extra.values())))


def extra_from_sqlite(value: str | bytes, lists: Mapping[int, Names]) -> dict[str, Any]:
    """The ``extra`` map of a stored row, either form; ``lists`` must hold its list."""
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)  # a row from before version 5
        return loaded
    names_id, values = unpack_extra(value)
    names = lists.get(names_id)
    if names is None:
        raise ValueError(f"extra names list {names_id} is not in {EXTRA_NAMES}")
    if len(names) != len(values):
        raise ValueError(f"extra names list {names_id} has {len(names)} names, not {len(values)}")
    return dict(zip(names, values, strict=True))


def list_to_sqlite(values: list[float]) -> bytes:
    return pack_numbers(values)


def list_from_sqlite(value: str | bytes) -> list[float]:
    if isinstance(value, str):
        loaded: list[float] = json.loads(value)  # a row from before version 5
        return loaded
    return unpack_numbers(value)


def packed_ids(values: Iterable[object]) -> set[int]:
    """The list ids of the packed ``extra`` values among ``values``."""
    return {read_varint(value)[0] for value in values if isinstance(value, bytes)}
