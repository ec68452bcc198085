"""SQLite's lists of ``extra`` names (table ``extra_names``): their ids, and when one goes.

A row's ``extra`` holds the id of its list of names (hub/storage/sqlite_values.py).
Lists live as long as a stored reading may use them, no longer (schema version 7):

- ``last_ts`` of a list is at least the ``ts`` of every reading that uses it: the
  writer raises it, in the transaction that inserts the readings, to the newest ``ts``
  of its batch that uses the list (:func:`assign_ids`).
- Retention, in its own write transaction, finds the oldest stored reading (one seek
  on the primary key per device) and deletes the lists whose ``last_ts`` is older
  (:func:`delete_unused`): no reading can use them. The two transactions are
  serialised by SQLite's write lock, so a list the writer is using has a ``last_ts``
  at least as new as the readings it is inserting. The cost does not grow with the
  readings: a few seeks and one range of the index on ``last_ts``.
- An id is never given twice (``AUTOINCREMENT``), so an id a hub knows can only be
  missing from the table, never name another list. The writer checks each id it
  knows inside its transaction (the ``UPDATE`` of ``last_ts`` finds the row or not)
  and stores the list again when it was deleted, under a new id; a reader fetches a
  batch's rows and their lists in one read transaction (one snapshot), so a list
  deleted meanwhile is still there for it.
- Only a reading that is really inserted stores a list or raises its ``last_ts``: the
  writer leaves out of a batch the readings already stored (a re-sent reading is
  stored once, hub/storage/sqlite.py), so re-sending a stored reading with new names
  adds no list and keeps none alive.

What bounds the table: a list's ``last_ts`` is the ``ts`` of a reading inserted with
it, and once a retention pass is through (a batch not full) every reading older than
the oldest kept is gone, and with it every list whose ``last_ts`` is older. So after
each pass every list is the list of the stored reading at its ``last_ts``: never more
lists than readings kept (one per reading, for a device whose names change with every
reading; each list at most 256 names of 64 characters, docs/protocol.md, about what
that reading would have cost with its names inline before version 5). No further cap:
refusing a reading for its names would lose data a device may rightly send. With
retention off (``--retain-readings off``) nothing is deleted, lists as readings. Lists
kept from version 5 get the newest reading's ``ts`` at the upgrade, and go once
retention passes it. A hub keeps at most :data:`MAX_CACHED_LISTS` of them in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Final

import aiosqlite
import orjson

from hub.storage.schema import EXTRA_NAMES, sqlite_reading_ts

__all__ = [
    "MAX_CACHED_LISTS",
    "NameLists",
    "Names",
    "assign_ids",
    "delete_unused",
    "names_digest",
    "names_for",
    "store_lists",
]

Names = tuple[str, ...]

# Lists a hub keeps in memory. A site's devices give one list or a few; a device
# whose names change with every reading must not grow the hub's memory without
# end: past this many the cache starts again (each list is then looked up once more).
MAX_CACHED_LISTS: Final = 4096

# The oldest stored reading's ts (one seek on the primary key per device, never a
# scan); NULL when there is no reading.
_OLDEST_TS: Final = sqlite_reading_ts("min")


class NameLists:
    """The ids of lists of ``extra`` names a hub has seen committed, both ways.

    An id names one list for ever (see the module docstring), so an entry is never
    wrong; it may name a list retention deleted since, which the writer checks.
    """

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

    def shared(self, names: Names) -> Names:
        """The tuple this cache holds for ``names``, when it knows them: the rows of one
        list then share one tuple, which the writer groups by identity (cheaper than
        hashing 50 names a row)."""
        names_id = self._ids.get(names)
        return names if names_id is None else self._names[names_id]

    def learn(self, names_id: int, names: Names) -> None:
        old = self._ids.get(names)
        if old == names_id:
            return
        if old is not None:  # stored again under a new id: the old one was deleted
            self._names.pop(old, None)
        elif len(self._ids) >= self._limit:
            self._ids.clear()
            self._names.clear()
        self._ids[names] = names_id
        self._names[names_id] = names

    def forget(self, ids: Iterable[int]) -> None:
        """Drop the lists of ``ids`` (deleted from the table)."""
        for names_id in ids:
            names = self._names.pop(names_id, None)
            if names is not None and self._ids.get(names) == names_id:
                del self._ids[names]


def _names_text(names: Names) -> str:
    return orjson.dumps(names).decode()


async def names_for(
    conn: aiosqlite.Connection, ids: set[int], lists: NameLists
) -> dict[int, Names]:
    """The lists of ``ids`` the table holds: known ones from ``lists``, the others fetched.

    Inside the read transaction that fetched the rows using them; ``lists`` learns the
    fetched ones.
    """
    found: dict[int, Names] = {}
    missing = []
    for names_id in ids:
        names = lists.names_of(names_id)
        if names is None:
            missing.append(names_id)
        else:
            found[names_id] = names
    if missing:
        marks = ", ".join("?" * len(missing))
        rows = await conn.execute_fetchall(
            f"SELECT id, names FROM {EXTRA_NAMES} WHERE id IN ({marks})", sorted(missing)
        )
        for names_id, text in rows:
            names = tuple(json.loads(text))
            found[int(names_id)] = names
            lists.learn(int(names_id), names)
    return found


async def assign_ids(
    conn: aiosqlite.Connection, newest: Mapping[Names, int], lists: NameLists
) -> tuple[dict[Names, int], set[Names], set[int]]:
    """Each list's id, its ``last_ts`` raised to ``newest[names]`` (inside the writer's
    transaction).

    Returns the ids, the lists not stored (the ones to store with :func:`store_lists`,
    after leaving out rows already stored), and the ids ``lists`` knew that are gone.
    """
    ids: dict[Names, int] = {}
    absent: set[Names] = set()
    gone: set[int] = set()
    for names, ts in newest.items():
        known = lists.id_of(names)
        if known is not None:
            cursor = await conn.execute(
                f"UPDATE {EXTRA_NAMES} SET last_ts = max(last_ts, ?) WHERE id = ?", (ts, known)
            )
            if cursor.rowcount == 1:
                ids[names] = known
                continue
            gone.add(known)
        absent.add(names)
    return ids, absent, gone


def names_digest(text: str) -> bytes:
    """The unique key of a list (schema version 7): 16 bytes of BLAKE2b of its JSON text."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


async def store_lists(conn: aiosqlite.Connection, newest: Mapping[Names, int]) -> dict[Names, int]:
    """Each list's id, stored now if new (another hub may have stored it), ``last_ts``
    raised to ``newest[names]``; inside the writer's transaction."""
    ids: dict[Names, int] = {}
    for names, ts in newest.items():
        text = _names_text(names)
        digest = names_digest(text)
        await conn.execute(
            f"INSERT INTO {EXTRA_NAMES} (digest, names, last_ts) VALUES (?, ?, ?) "
            "ON CONFLICT (digest) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts)",
            (digest, text, ts),
        )
        rows = list(
            await conn.execute_fetchall(
                f"SELECT id, names FROM {EXTRA_NAMES} WHERE digest = ?", (digest,)
            )
        )
        if rows[0][1] != text:  # two lists with one digest: 2^-128, never seen
            raise ValueError(f"{EXTRA_NAMES}: list {rows[0][0]} has the digest of {text[:80]}")
        ids[names] = int(rows[0][0])
    return ids


async def delete_unused(conn: aiosqlite.Connection, limit: int) -> list[int]:
    """Delete up to ``limit`` lists no stored reading can use, oldest first; their ids.

    Inside a write transaction (retention's), so no reading is inserted meanwhile.
    """
    if limit <= 0:
        return []
    rows = list(await conn.execute_fetchall(_OLDEST_TS))
    oldest = rows[0][0] if rows else None
    if oldest is None:  # no reading: no list is used
        found = await conn.execute_fetchall(
            f"SELECT id FROM {EXTRA_NAMES} ORDER BY last_ts LIMIT ?", (limit,)
        )
    else:
        found = await conn.execute_fetchall(
            f"SELECT id FROM {EXTRA_NAMES} WHERE last_ts < ? ORDER BY last_ts LIMIT ?",
            (oldest, limit),
        )
    ids = [int(row[0]) for row in found]
    if ids:
        await conn.executemany(f"DELETE FROM {EXTRA_NAMES} WHERE id = ?", [(i,) for i in ids])
    return ids
