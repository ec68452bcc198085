"""How SQLite holds ``extra`` and the phase lists (schema version 5), and reads both forms.

Pure logic apart from the two small lookups at the end. A reading's ``extra``
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

The writer's path learns a list's id once: :class:`NameLists` caches the ids
committed so far; a row whose list has none yet carries :class:`NewNames`
until its transaction gives it one (``INSERT ... ON CONFLICT DO NOTHING``, then
its id), so two hubs on one file agree on the ids and a rolled back
transaction leaves no id in the cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiosqlite
import orjson

from hub.storage.packed import pack_extra, pack_numbers, read_varint, unpack_extra, unpack_numbers
from hub.storage.schema import EXTRA_NAMES

__all__ = [
    "MAX_CACHED_LISTS",
    "NameLists",
    "NewNames",
    "extra_from_sqlite",
    "extra_to_sqlite",
    "learn_ids",
    "list_from_sqlite",
    "list_to_sqlite",
    "packed_ids",
    "resolve_names",
]

Names = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewNames:
    """A prepared row's ``extra`` whose list of names has no id yet (see the module docstring)."""

    names: Names
    values: bytes  # packed (hub/storage/packed.py)


# Lists a hub keeps in memory. A site's devices give one list or a few; a device
# whose names change with every reading must not grow the hub's memory without
# end: past this many the cache starts again (each list is then looked up once more).
MAX_CACHED_LISTS: Final = 4096


class NameLists:
    """The ids of lists of ``extra`` names known to be committed, both ways."""

    def __init__(self, limit: int = MAX_CACHED_LISTS) -> None:
        self._ids: dict[Names, int] = {}
        self._names: dict[int, Names] = {}
        self._limit = limit

    def __len__(self) -> int:
        return len(self._ids)

    def id_of(self, names: Names) -> int | None:
        return self._ids.get(names)

    def names_of(self, names_id: int) -> Names | None:
        return self._names.get(names_id)

    def learn(self, names_id: int, names: Names) -> None:
        if len(self._ids) >= self._limit:
            self._ids.clear()
            self._names.clear()
        self._ids[names] = names_id
        self._names[names_id] = names


def _names_text(names: Names) -> str:
    return orjson.dumps(names).decode()


def extra_to_sqlite(extra: Mapping[str, float], lists: NameLists) -> bytes | NewNames:
    """``extra`` as the row holds it: packed with its list's id, or waiting for one."""
    names = tuple(extra)
    values = list(extra.values())
    names_id = lists.id_of(names)
    if names_id is None:
        return NewNames(names, pack_numbers(values))
    return pack_extra(names_id, values)


def extra_from_sqlite(value: str | bytes, lists: NameLists) -> dict[str, Any]:
    """The ``extra`` map of a stored row, either form; its list must be known to ``lists``."""
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)  # a row from before version 5
        return loaded
    names_id, values = unpack_extra(value)
    names = lists.names_of(names_id)
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


async def learn_ids(conn: aiosqlite.Connection, ids: set[int], lists: NameLists) -> None:
    """Fetch the lists of ``ids`` that ``lists`` does not know yet."""
    missing = sorted(i for i in ids if lists.names_of(i) is None)
    if not missing:
        return
    marks = ", ".join("?" * len(missing))
    rows = await conn.execute_fetchall(
        f"SELECT id, names FROM {EXTRA_NAMES} WHERE id IN ({marks})", missing
    )
    for names_id, text in rows:
        lists.learn(int(names_id), tuple(json.loads(text)))


async def resolve_names(conn: aiosqlite.Connection, pending: Iterable[Names]) -> dict[Names, int]:
    """Each list's id, stored now if new (inside the caller's write transaction)."""
    ids: dict[Names, int] = {}
    for names in pending:
        text = _names_text(names)
        await conn.execute(
            f"INSERT INTO {EXTRA_NAMES} (names) VALUES (?) ON CONFLICT (names) DO NOTHING",
            (text,),
        )
        rows = list(
            await conn.execute_fetchall(f"SELECT id FROM {EXTRA_NAMES} WHERE names = ?", (text,))
        )
        ids[names] = int(rows[0][0])
    return ids
