"""The schema's history: one list of versions, each with its PostgreSQL and SQLite statements.

Both storages keep the same tables (:mod:`hub.storage.schema` describes them) and
record each applied version in ``ems_schema_version``, so a database of either kind
at version N has exactly the tables and columns of version N. A new version is one
more :class:`Migration` at the end of :data:`MIGRATIONS`, with a statement list for
each :class:`Dialect`; :func:`run_migrations` applies what a database lacks, on
either, through the small :class:`SchemaTarget` interface each storage implements
(hub/storage/migrate.py for PostgreSQL, hub/storage/sqlite.py for SQLite).

Every statement is safe to run twice where the dialect allows it (``IF NOT EXISTS``),
because two hubs may start together; the runner applies each version and records
it in one transaction, so a hub killed half-way leaves all of a version or none.

SQLite stores times as integer microseconds since the Unix epoch, ``devices`` as
JSON text, and phase lists and ``extra`` as JSON text up to version 4, packed
BLOBs from version 5 (:mod:`hub.storage.sqlite_values`, both read); ``readings``
is a ``WITHOUT ROWID`` table clustered on its primary key. PostgreSQL uses ``timestamptz``, ``double
precision[]`` and ``jsonb``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Final, Protocol

from hub.storage.base import StorageConfigError
from hub.storage.columns import ENERGY_COLUMNS, FIELD_COLUMNS, ColumnKind, FieldColumn
from hub.storage.energy import rollup_table_sql, timezones_table_sql
from hub.storage.float32_codec import MASK_COLUMN
from hub.storage.pruned_energy import pruned_table_sql
from hub.storage.schema import (
    BUMP_TOKEN_GENERATION,
    EXTRA_NAMES_SQLITE,
    EXTRA_NAMES_V7_SQLITE,
    READINGS,
    TOKEN_GENERATION,
    TOKENS,
    VERSION_TABLE,
)

logger = logging.getLogger(__name__)


class Dialect(enum.Enum):
    POSTGRES = "postgresql"
    SQLITE = "sqlite"


_TYPES: Final = {
    Dialect.POSTGRES: {
        ColumnKind.NUMBER: "double precision",
        ColumnKind.TEXT: "text",
        ColumnKind.NUMBER_LIST: "double precision[]",
    },
    Dialect.SQLITE: {
        ColumnKind.NUMBER: "REAL",
        ColumnKind.TEXT: "TEXT",
        ColumnKind.NUMBER_LIST: "TEXT",  # JSON array
    },
}


def column_type(dialect: Dialect, column: FieldColumn) -> str:
    return _TYPES[dialect][column.kind]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: what it adds, as statements for each dialect.

    A dialect with nothing to change has no statements (``()``); its databases
    still record the version, so both kinds count their versions alike.
    """

    version: int
    description: str
    postgres: tuple[str, ...]
    sqlite: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.postgres if dialect is Dialect.POSTGRES else self.sqlite


def _field_ddl(dialect: Dialect) -> str:
    return ",\n    ".join(f"{c.name} {column_type(dialect, c)}" for c in FIELD_COLUMNS)


# SQLite's counter bump, a deleted row coming back. No ON CONFLICT here on purpose:
# inside a trigger, the firing statement's policy replaces the trigger's own
# (https://sqlite.org/lang_createtrigger.html), so "INSERT OR IGNORE INTO
# device_tokens" would make an upsert skip the bump.
_SQLITE_BUMP_TOKEN_GENERATION: Final = (
    f"INSERT INTO {TOKEN_GENERATION} (id, generation) "
    f"SELECT 1, 0 WHERE NOT EXISTS (SELECT 1 FROM {TOKEN_GENERATION}); "
    f"UPDATE {TOKEN_GENERATION} SET generation = generation + 1 WHERE id = 1"
)

MIGRATIONS: Final = (
    Migration(
        1,
        "readings and device tokens",
        postgres=(
            f"""
CREATE TABLE IF NOT EXISTS {READINGS} (
    device_id text NOT NULL,
    ts timestamptz NOT NULL,
    seq bigint,
    received_at timestamptz NOT NULL,
    sections smallint NOT NULL,
    {_field_ddl(Dialect.POSTGRES)},
    extra jsonb,
    PRIMARY KEY (device_id, ts)
)""",
            f"""
CREATE TABLE IF NOT EXISTS {TOKENS} (
    token_hash text PRIMARY KEY,
    device_id text NOT NULL,
    created_at timestamptz NOT NULL
)""",
            f"CREATE INDEX IF NOT EXISTS {TOKENS}_device_idx ON {TOKENS} (device_id)",
        ),
        sqlite=(
            f"""
CREATE TABLE IF NOT EXISTS {READINGS} (
    device_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    seq INTEGER,
    received_at INTEGER NOT NULL,
    sections INTEGER NOT NULL,
    {_field_ddl(Dialect.SQLITE)},
    extra TEXT,
    PRIMARY KEY (device_id, ts)
) WITHOUT ROWID""",
            f"""
CREATE TABLE IF NOT EXISTS {TOKENS} (
    token_hash TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
)""",
            f"CREATE INDEX IF NOT EXISTS {TOKENS}_device_idx ON {TOKENS} (device_id)",
        ),
    ),
    Migration(
        2,
        "token generation counter",
        postgres=(
            f"""
CREATE TABLE IF NOT EXISTS {TOKEN_GENERATION} (
    id smallint PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL
)""",
            f"INSERT INTO {TOKEN_GENERATION} (id, generation) VALUES (1, 0) "
            "ON CONFLICT (id) DO NOTHING",
            # The table is named through TG_TABLE_SCHEMA, not the search_path: a
            # psql session with another search_path can still edit the tokens.
            # An upsert, so a deleted counter row comes back at the next change.
            f"""
CREATE OR REPLACE FUNCTION {BUMP_TOKEN_GENERATION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'INSERT INTO %I.{TOKEN_GENERATION} AS g (id, generation) VALUES (1, 1) '
        'ON CONFLICT (id) DO UPDATE SET generation = g.generation + 1',
        TG_TABLE_SCHEMA
    );
    RETURN NULL;
END
$$""",
            # CREATE OR REPLACE TRIGGER: PostgreSQL 14 (migrate.MIN_SERVER_VERSION).
            f"CREATE OR REPLACE TRIGGER {TOKENS}_generation "
            f"AFTER INSERT OR UPDATE OR DELETE ON {TOKENS} "
            f"FOR EACH ROW EXECUTE FUNCTION {BUMP_TOKEN_GENERATION}()",
            f"CREATE OR REPLACE TRIGGER {TOKENS}_generation_truncate "
            f"AFTER TRUNCATE ON {TOKENS} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {BUMP_TOKEN_GENERATION}()",
        ),
        sqlite=(
            f"""
CREATE TABLE IF NOT EXISTS {TOKEN_GENERATION} (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
)""",
            f"INSERT OR IGNORE INTO {TOKEN_GENERATION} (id, generation) VALUES (1, 0)",
            # Row-level triggers, as in PostgreSQL; SQLite has no TRUNCATE, and its
            # "DELETE without WHERE" shortcut is off for a table with triggers.
            *(
                f"CREATE TRIGGER IF NOT EXISTS {TOKENS}_generation_{event.lower()} "
                f"AFTER {event} ON {TOKENS} BEGIN {_SQLITE_BUMP_TOKEN_GENERATION}; END"
                for event in ("INSERT", "UPDATE", "DELETE")
            ),
        ),
    ),
    Migration(
        3,
        "each device's own values (several devices per role)",
        # Nullable without a default: no rewrite of existing rows, and allowed on a
        # compressed hypertable. SQLite has no ADD COLUMN IF NOT EXISTS; the version
        # table (written in the same transaction) keeps it from running twice.
        postgres=(f"ALTER TABLE {READINGS} ADD COLUMN IF NOT EXISTS devices jsonb",),
        sqlite=(f"ALTER TABLE {READINGS} ADD COLUMN devices TEXT",),
    ),
    Migration(
        4,
        "energy per reading, its rollup, and each device's time zone",
        postgres=(
            # Nullable without a default, as version 3: no rewrite, fine on compressed chunks.
            *(
                f"ALTER TABLE {READINGS} ADD COLUMN IF NOT EXISTS {name} "
                f"{'boolean' if name == 'energy_complete' else 'double precision'}"
                for name in ENERGY_COLUMNS
            ),
            # Kept by the writer on plain PostgreSQL (hub/storage/energy.py); TimescaleDB
            # reads its continuous aggregate instead and leaves this table empty.
            rollup_table_sql(
                text="text", bucket="timestamptz", integer="bigint", real="double precision"
            ),
            timezones_table_sql(text="text", instant="timestamptz"),
        ),
        sqlite=(
            *(
                f"ALTER TABLE {READINGS} ADD COLUMN {name} "
                f"{'INTEGER' if name == 'energy_complete' else 'REAL'}"
                for name in ENERGY_COLUMNS
            ),
            # Buckets as microseconds since the epoch, like every time here.
            rollup_table_sql(text="TEXT", bucket="INTEGER", integer="INTEGER", real="REAL")
            + " WITHOUT ROWID",
            timezones_table_sql(text="TEXT", instant="INTEGER"),
        ),
    ),
    Migration(
        5,
        "SQLite: extra's names once per list, values and phase lists packed",
        # PostgreSQL keeps jsonb and double precision[]: nothing changes there.
        postgres=(),
        # Rows written before keep their JSON text and are read as they are
        # (hub/storage/sqlite_values.py): no row is rewritten.
        sqlite=(EXTRA_NAMES_SQLITE,),
    ),
    Migration(
        6,
        "PostgreSQL: which fields a row holds as float32 stand-ins",
        # hub/storage/float32_codec.py. Nullable without a default, as version 3: a
        # row written before has none and is read as it is. SQLite packs decimals.
        postgres=(f"ALTER TABLE {READINGS} ADD COLUMN IF NOT EXISTS {MASK_COLUMN} bigint",),
        sqlite=(),
    ),
    Migration(
        7,
        "SQLite: a list of extra's names is deleted once no stored reading uses it",
        postgres=(),
        # The table is made again (AUTOINCREMENT cannot be added to one), with last_ts:
        # hub/storage/name_lists.py.
        sqlite=EXTRA_NAMES_V7_SQLITE,
    ),
    Migration(
        8,
        "the energy of rollup buckets retention deleted, per device",
        # hub/storage/pruned_energy.py: all-time totals outlive --retain-rollups.
        postgres=(pruned_table_sql(text="text", integer="bigint", real="double precision"),),
        sqlite=(pruned_table_sql(text="TEXT", integer="INTEGER", real="REAL"),),
    ),
    # A new version goes here: Migration(9, "...", postgres=(...), sqlite=(...)).
)
LATEST_VERSION: Final = MIGRATIONS[-1].version

_VERSION_TABLE_SQL: Final = {
    Dialect.POSTGRES: f"""
CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)""",
    # applied_at: microseconds since the Unix epoch, like every SQLite time here.
    Dialect.SQLITE: f"""
CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)""",
}


def version_table_sql(dialect: Dialect) -> str:
    return _VERSION_TABLE_SQL[dialect]


def missing_column_statements(dialect: Dialect, existing: Iterable[str]) -> list[str]:
    """``ADD COLUMN`` for protocol fields newer than the table (a field added to telemetry).

    Not versioned: a field added to the protocol adds its column wherever it is missing.
    """
    present = set(existing)
    guard = "IF NOT EXISTS " if dialect is Dialect.POSTGRES else ""
    return [
        f"ALTER TABLE {READINGS} ADD COLUMN {guard}{c.name} {column_type(dialect, c)}"
        for c in FIELD_COLUMNS
        if c.name not in present
    ]


def pending(applied: Iterable[int], where: str) -> list[Migration]:
    """The versions a database at ``applied`` lacks, in order; a newer database is refused.

    ``where`` names the database in the error ("the database", a file's path).
    """
    done = set(applied)
    newest = max(done, default=0)
    if newest > LATEST_VERSION:
        raise StorageConfigError(
            f"{where}'s schema is version {newest}, newer than this hub's "
            f"({LATEST_VERSION}): upgrade the hub"
        )
    return [m for m in MIGRATIONS if m.version not in done]


class SchemaTarget(Protocol):
    """A connection to migrate, as each storage provides it."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def where(self) -> str:
        """The database's name in errors."""
        ...

    async def execute(self, sql: str) -> None: ...

    async def applied_versions(self) -> set[int]: ...

    async def record(self, migration: Migration) -> None:
        """Insert the version's row into the version table."""
        ...

    async def readings_columns(self) -> set[str]: ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """One transaction (or none, where the caller already holds one for the whole run)."""
        ...


async def run_migrations(target: SchemaTarget) -> int:
    """Bring ``target`` to :data:`LATEST_VERSION`, then add columns for newer fields.

    Returns the version the database is at. The caller serialises hubs (PostgreSQL: an
    advisory lock; SQLite: one ``BEGIN IMMEDIATE`` around the run).
    """
    dialect = target.dialect
    await target.execute(version_table_sql(dialect))
    for migration in pending(await target.applied_versions(), target.where):
        async with target.transaction():
            for sql in migration.statements(dialect):
                await target.execute(sql)
            await target.record(migration)
        logger.info("applied schema migration %d: %s", migration.version, migration.description)
    missing = missing_column_statements(dialect, await target.readings_columns())
    if missing:
        async with target.transaction():
            for sql in missing:
                await target.execute(sql)
        logger.info("added %d column(s) for new protocol fields", len(missing))
    return LATEST_VERSION
