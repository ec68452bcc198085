"""PostgreSQL specifics: concurrent migrations, upgrades, TimescaleDB fallback, outages; each
that is not about TimescaleDB's absence runs on TimescaleDB too (`any_url`)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from hub.storage import postgres as pg
from hub.storage.base import StorageConfigError, StorageError, StorageUnavailable, TokenRecord
from hub.storage.history import MIGRATIONS, Dialect, version_table_sql
from hub.storage.migrate import TIMESCALE_PRELOADED_SQL, try_create_extension
from hub.storage.postgres import PostgresOptions, PostgresStorage, is_unavailable
from hub.storage.schema import TimescaleMode, TimescaleOptions
from tests.hub.storage.helpers import BASE_TS, fresh_schema, opened, run_policy, simple
from tests.support.ports import free_port
from tests.tcp_proxy import CutMode, TcpProxy

WIDE = (BASE_TS - timedelta(days=1), BASE_TS + timedelta(days=1))


@pytest.fixture
async def schema_url(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres_url) as url:
        yield url


@pytest.fixture(params=["postgres", pytest.param("timescaledb", marks=pytest.mark.timescaledb)])
def server_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(kind, url): the run's PostgreSQL database, or a new one on the TimescaleDB server
    (sync: those fixtures use asyncio.run, which cannot run inside the test's loop)."""
    if request.param == "timescaledb":
        return "timescaledb", str(request.getfixturevalue("timescaledb_url"))
    return "postgres", str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def any_url(server_url: tuple[str, str]) -> AsyncIterator[str]:
    """A fresh schema on plain PostgreSQL, or a fresh database with TimescaleDB: what
    is not about TimescaleDB's absence holds on both."""
    kind, url = server_url
    if kind == "timescaledb":
        yield url
        return
    async with fresh_schema(url) as fresh:
        yield fresh


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join([*filter(None, [parts.query]), *(f"{k}={v}" for k, v in params.items())])
    return parts._replace(query=query).geturl()


def _options(**kwargs: object) -> PostgresOptions:
    timescale = kwargs.pop("timescale", TimescaleOptions())
    assert isinstance(timescale, TimescaleOptions)
    return PostgresOptions(timescale=timescale, connect_timeout_s=3.0, **kwargs)  # type: ignore[arg-type]


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_hubs_starting_together_migrate_once(any_url: str) -> None:
    storages = [PostgresStorage(any_url, _options()) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in storages))
    try:
        rows = await _fetch(any_url, "SELECT version FROM ems_schema_version ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in MIGRATIONS]
        await storages[0].write_readings([simple("dev-1", BASE_TS, seq=1)])
        assert len(await storages[3].readings("dev-1", *WIDE, limit=10)) == 1
    finally:
        await asyncio.gather(*(s.close() for s in storages))


async def test_without_timescaledb_the_plain_schema_is_used(schema_url: str) -> None:
    async with opened(PostgresStorage(schema_url, _options())) as storage:
        assert isinstance(storage, PostgresStorage)
        status = storage.timescale
        assert not status.present
        assert "timescaledb" in status.reason
        assert storage.description == "PostgreSQL"
        await storage.write_readings([simple("dev-1", BASE_TS, seq=1)])
        # Buckets go through date_bin on the raw rows.
        buckets = await storage.buckets("dev-1", *WIDE, timedelta(minutes=1))
        assert [b["grid"]["power_w"] for b in buckets] == [100.0]
    indexes = await _fetch(
        schema_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'readings'"
    )
    assert {"readings_pkey", "readings_ts_brin"} <= {r["indexname"] for r in indexes}


async def test_timescaledb_required_but_missing_is_a_config_error(schema_url: str) -> None:
    storage = PostgresStorage(
        schema_url, _options(timescale=TimescaleOptions(mode=TimescaleMode.REQUIRED))
    )
    with pytest.raises(StorageConfigError, match="TimescaleDB is required"):
        await storage.open()


async def test_timescaledb_off_by_configuration(schema_url: str) -> None:
    storage = PostgresStorage(
        schema_url, _options(timescale=TimescaleOptions(mode=TimescaleMode.OFF))
    )
    async with opened(storage):
        assert storage.timescale.reason == "TimescaleDB turned off by configuration"


async def test_a_failed_create_extension_leaves_the_connection_usable(schema_url: str) -> None:
    conn = await asyncpg.connect(schema_url)
    try:
        status = await try_create_extension(conn, "ems_no_such_extension", check_available=False)
        assert not status.present
        assert "CREATE EXTENSION ems_no_such_extension failed" in status.reason
        assert await conn.fetchval("SELECT 41 + 1") == 42
        # Inside a caller's transaction too: only a savepoint is rolled back.
        async with conn.transaction():
            await conn.execute("CREATE TABLE survivor (x int)")
            status = await try_create_extension(
                conn, "ems_no_such_extension", check_available=False
            )
            assert not status.present
            await conn.execute("INSERT INTO survivor VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM survivor") == 1
        # An available check that finds nothing does not even try.
        status = await try_create_extension(conn, "ems_no_such_extension")
        assert status.reason == "extension 'ems_no_such_extension' is not installed on the server"
    finally:
        await conn.close()


async def test_a_placeholder_setting_does_not_pass_for_a_preloaded_timescaledb(
    schema_url: str,
) -> None:
    # A timescaledb.* value in postgresql.conf without the library preloaded is
    # only a placeholder: it must not make the hub try CREATE EXTENSION (FATAL).
    conn = await asyncpg.connect(schema_url)
    try:
        assert await conn.fetchval(TIMESCALE_PRELOADED_SQL) is False
        await conn.execute("SET timescaledb.max_background_workers = '8'")
        assert await conn.fetchval("SHOW timescaledb.max_background_workers") == "8"
        assert await conn.fetchval(TIMESCALE_PRELOADED_SQL) is False
    finally:
        await conn.close()


async def test_a_schema_newer_than_the_hub_is_refused(any_url: str) -> None:
    async with opened(PostgresStorage(any_url, _options())):
        pass
    conn = await asyncpg.connect(any_url)
    try:
        await conn.execute(
            "INSERT INTO ems_schema_version (version, description) VALUES (999, 'x')"
        )
    finally:
        await conn.close()
    with pytest.raises(StorageConfigError, match="version 999, newer than this hub"):
        await PostgresStorage(any_url, _options()).open()


async def test_a_column_missing_for_a_newer_field_is_added(any_url: str) -> None:
    async with opened(PostgresStorage(any_url, _options())):
        pass
    conn = await asyncpg.connect(any_url)
    try:
        await conn.execute("ALTER TABLE readings DROP COLUMN battery_state")
    finally:
        await conn.close()
    async with opened(PostgresStorage(any_url, _options())) as storage:
        reading = simple("dev-1", BASE_TS)
        body = reading.reading.to_wire() | {"battery": {"state": "idle"}}
        from tests.hub.storage.helpers import stored

        await storage.write_readings([stored("dev-1", body)])
        rows = await storage.readings("dev-1", *WIDE, limit=1)
        assert rows[0]["battery"] == {"state": "idle"}


async def test_a_schema_of_version_1_upgrades_and_keeps_its_tokens_and_readings(
    any_url: str,
) -> None:
    conn = await asyncpg.connect(any_url)
    try:  # as the previous hub left it
        await conn.execute(version_table_sql(Dialect.POSTGRES))
        assert MIGRATIONS[0].version == 1
        for sql in MIGRATIONS[0].statements(Dialect.POSTGRES):
            await conn.execute(sql)
        await conn.execute(
            "INSERT INTO ems_schema_version (version, description) VALUES (1, $1)",
            MIGRATIONS[0].description,
        )
        await conn.execute("INSERT INTO device_tokens VALUES ('h1', 'dev-1', now())")
        await conn.execute(
            "INSERT INTO readings (device_id, ts, seq, received_at, sections, grid_power_w) "
            "VALUES ('dev-1', $1, 1, now(), 2, 100.0)",
            BASE_TS,
        )
    finally:
        await conn.close()
    async with opened(PostgresStorage(any_url, _options())) as storage:
        # With TimescaleDB, the stored reading moved into the new hypertable's chunks.
        (old,) = await storage.readings("dev-1", *WIDE, limit=10)
        assert (old["seq"], old["grid"]) == (1, {"power_w": 100.0})
        if storage.timescale.present:
            chunks = await _fetch(
                any_url,
                "SELECT count(*) AS n FROM timescaledb_information.chunks "
                "WHERE hypertable_name = 'readings'",
            )
            assert chunks[0]["n"] == 1
        assert [t.token_hash for t in await storage.tokens()] == ["h1"]
        before = await storage.token_generation()
        assert await storage.revoke_tokens("dev-1") == 1
        assert await storage.token_generation() != before
    rows = await _fetch(any_url, "SELECT version FROM ems_schema_version ORDER BY version")
    assert [r["version"] for r in rows] == [m.version for m in MIGRATIONS]


async def test_token_changes_by_hand_move_the_generation(
    postgres_url: str, schema_url: str
) -> None:
    schema = parse_qs(urlsplit(schema_url).query)["search_path"][0]
    async with opened(PostgresStorage(schema_url, _options())) as storage:
        await storage.add_token(TokenRecord("dev-1", "h1", BASE_TS))
        last = await storage.token_generation()
        # psql with the default search_path: the trigger must not depend on it.
        conn = await asyncpg.connect(postgres_url)
        try:
            for sql, changes in (
                ("INSERT INTO {}.device_tokens VALUES ('h2', 'dev-1', now())", True),
                (
                    "INSERT INTO {}.device_tokens VALUES ('h2', 'dev-1', now()) "
                    "ON CONFLICT DO NOTHING",
                    False,
                ),
                ("UPDATE {}.device_tokens SET device_id = 'dev-2' WHERE token_hash = 'h2'", True),
                ("DELETE FROM {}.device_tokens WHERE device_id = 'nobody'", False),
                ("DELETE FROM {}.token_generation", True),  # a lost counter row comes back...
                ("DELETE FROM {}.device_tokens WHERE token_hash = 'h2'", True),  # ... here
                ("TRUNCATE {}.device_tokens", True),
            ):
                await conn.execute(sql.format(f'"{schema}"'))
                now = await storage.token_generation()
                assert (now != last) == changes, sql
                last = now
        finally:
            await conn.close()
        assert await storage.tokens() == []


async def test_an_unreachable_database_is_unavailable(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{free_port()}").geturl()
    with pytest.raises(StorageUnavailable, match="migrating the schema"):
        await PostgresStorage(url, _options()).open()


@pytest.mark.parametrize("write_thread", [True, False], ids=["writer-thread", "caller-loop"])
async def test_batches_commit_on_the_writer_thread_or_the_callers_loop(
    any_url: str, write_thread: bool
) -> None:
    # Its own application_name: other tests' closing connections may still be listed.
    name = f"ems_test_{secrets.token_hex(4)}"
    storage = PostgresStorage(
        with_query(any_url, application_name=name), _options(write_thread=write_thread)
    )
    async with opened(storage):
        backends = await _fetch(
            any_url,
            f"SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '{name}'",
        )
        # The writer's own pool holds a connection beside the query pool's.
        assert backends[0]["n"] == (2 if write_thread else 1)
        await storage.write_readings([simple("dev-1", BASE_TS, seq=1)])
        await storage.write_readings([simple("dev-1", BASE_TS, seq=1)])  # re-sent: stored once
        assert [r["seq"] for r in await storage.readings("dev-1", *WIDE, limit=10)] == [1]
    with pytest.raises(StorageUnavailable, match="not open"):
        await storage.write_readings([simple("dev-1", BASE_TS, seq=2)])


async def test_copy_goes_straight_to_the_table_until_a_batch_holds_a_stored_reading(
    any_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On TimescaleDB "straight" is the stage's rows inserted whole as float32
    # stand-ins (hub/storage/float32_codec.py), without ON CONFLICT, as COPY is.
    storage = PostgresStorage(any_url, _options())
    async with opened(storage):
        fresh = [simple("dev-1", BASE_TS + timedelta(seconds=i), seq=i) for i in range(3)]
        await storage.write_readings(fresh)
        assert storage._direct_copy_after == 0.0  # no failure: the stage was not needed
        # A re-sent reading among new ones: the direct COPY fails whole and is
        # rolled back, the stage path stores each reading once.
        later = [simple("dev-1", BASE_TS + timedelta(seconds=i), seq=i) for i in range(2, 5)]
        await storage.write_readings(later)
        assert storage._direct_copy_after > 0.0
        rows = await storage.readings("dev-1", *WIDE, limit=10)
        assert [r["seq"] for r in rows] == [0, 1, 2, 3, 4]
        # While paused, batches take the stage; afterwards, COPY goes direct again.
        monkeypatch.setattr(storage, "_direct_copy_after", 0.0)
        await storage.write_readings([simple("dev-1", BASE_TS + timedelta(seconds=5), seq=5)])
        assert storage._direct_copy_after == 0.0
        rows = await storage.readings("dev-1", *WIDE, limit=10)
        assert [r["seq"] for r in rows] == [0, 1, 2, 3, 4, 5]


async def test_a_cut_connection_is_unavailable_then_recovers(any_url: str) -> None:
    parts = urlsplit(any_url)
    async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        storage = PostgresStorage(proxy.rewrite_url(any_url), _options())
        async with opened(storage):
            await storage.write_readings([simple("dev-1", BASE_TS, seq=1)])
            await proxy.cut()
            with pytest.raises(StorageUnavailable):
                await storage.write_readings(
                    [simple("dev-1", BASE_TS + timedelta(seconds=1), seq=2)]
                )
            with pytest.raises(StorageUnavailable):
                await storage.check()
            await proxy.restore()
            await storage.write_readings([simple("dev-1", BASE_TS + timedelta(seconds=1), seq=2)])
            assert [r["seq"] for r in await storage.readings("dev-1", *WIDE, limit=10)] == [1, 2]

            # A network that swallows packets: the connect timeout decides.
            await proxy.cut(CutMode.HOLD)
            with pytest.raises(StorageUnavailable):
                await storage.check()
            await proxy.restore()
            await storage.check()


async def test_terminated_backends_are_unavailable_then_recover(any_url: str) -> None:
    name = "ems-terminated-test"
    async with opened(
        PostgresStorage(with_query(any_url, application_name=name), _options())
    ) as storage:
        await storage.write_readings([simple("dev-1", BASE_TS, seq=1)])
        conn = await asyncpg.connect(any_url)
        try:
            # What a database restart does to the pool's connections.
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                name,
            )
        finally:
            await conn.close()
        assert killed >= 1
        second = simple("dev-1", BASE_TS + timedelta(seconds=1), seq=2)
        try:
            await storage.write_readings([second])
        except StorageUnavailable:
            # asyncpg may or may not have noticed the FATAL message before the
            # write; if not, the write fails as an outage, and the next succeeds.
            await storage.write_readings([second])
        assert len(await storage.readings("dev-1", *WIDE, limit=10)) == 2


async def test_other_database_errors_are_storage_errors_not_outages(any_url: str) -> None:
    async with opened(PostgresStorage(any_url, _options())) as storage:
        conn = await asyncpg.connect(any_url)
        try:
            await conn.execute(
                "ALTER TABLE readings ADD CONSTRAINT no_dev_x CHECK (device_id <> 'x')"
            )
        finally:
            await conn.close()
        with pytest.raises(StorageError) as caught:
            await storage.write_readings([simple("x", BASE_TS)])
        assert not isinstance(caught.value, StorageUnavailable)
        assert isinstance(caught.value.__cause__, asyncpg.CheckViolationError)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (TimeoutError(), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation"), True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.exceptions.TooManyConnectionsError("too many clients"), True),
        (asyncpg.exceptions.SerializationError("could not serialize"), True),
        (asyncpg.InterfaceError("pool is closing"), True),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), False),
        (asyncpg.exceptions.UndefinedColumnError("no such column"), False),
        (asyncpg.exceptions.DataError("invalid input for query argument"), False),
        (ValueError("not a driver error"), False),
    ],
)
def test_which_errors_mean_unavailable(error: BaseException, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable


async def test_devices_never_scans_the_table(any_url: str) -> None:
    # On TimescaleDB: the hypertable's chunks, the compressed one included (its
    # compressed rows hold a segment of ~1,000 readings each, so scanning them is not
    # scanning the readings).
    async with opened(PostgresStorage(any_url, _options())) as storage:
        for device in range(5):
            await storage.write_readings(
                [simple(f"dev-{device}", BASE_TS + timedelta(seconds=s)) for s in range(4000)]
            )
        recent = datetime.now(UTC).replace(microsecond=0)
        for device in range(5):
            await storage.write_readings(
                [simple(f"dev-{device}", recent - timedelta(seconds=s)) for s in range(1000)]
            )
        conn = await asyncpg.connect(any_url)
        try:
            if storage.timescale.present:
                await run_policy(conn, "policy_compression", "readings")
                compressed = await conn.fetchval(
                    "SELECT count(*) FROM timescaledb_information.chunks "
                    "WHERE hypertable_name = 'readings' AND is_compressed"
                )
                assert compressed == 1  # BASE_TS's chunk; today's is not
            await conn.execute("ANALYZE readings")
            plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {pg._DEVICES}")
        finally:
            await conn.close()
        nodes = []
        stack = [json.loads(plan)[0]["Plan"]]
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(node.get("Plans", []))
        scanned = {(n["Node Type"], n.get("Relation Name") or "") for n in nodes}
        row_tables = [rel for _, rel in scanned if rel == "readings" or rel.startswith("_hyper_")]
        assert row_tables
        for kind, rel in scanned:
            assert not (kind == "Seq Scan" and rel in row_tables), scanned
        assert any(kind.startswith("Index") and rel in row_tables for kind, rel in scanned)
        devices = await storage.devices()
        assert [d.last_seen for d in devices] == [recent] * 5


def test_the_energy_watermark_is_read_from_the_extension_versions_function_schema() -> None:
    assert "_timescaledb_functions.cagg_watermark" in pg.energy_watermark_sql("2.28.3")
    assert "_timescaledb_functions.cagg_watermark" in pg.energy_watermark_sql("2.12.0-dev")
    assert "_timescaledb_internal.cagg_watermark" in pg.energy_watermark_sql("2.11.2")
