"""Handlers of ``ems hub ...`` (declared in ems/cli.py; README, "Commands").

Each takes the parsed arguments and returns the exit code: 0 done, 1 a runtime
failure (the database does not answer), 2 a usage or config error. Errors are
one line on stderr. The settings come from :meth:`HubSettings.resolve`, the one
place flags and environment meet.

The token commands say on stderr which storage they used: run from another
folder, the default ``./ems-data`` is another database than the hub's.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from hub.auth import hash_token, new_token
from hub.limits import ConnectionLimits, raise_fd_limit
from hub.proxies import DEFAULT_TRUSTED_PROXIES, exempt_with_proxies, parse_trusted_proxies
from hub.runtime import HubSettings
from hub.storage import describe_storage, open_storage, storage_from_url
from hub.storage.base import Storage, StorageConfigError, StorageError, TokenRecord
from hub.storage.retention import DEFAULT_READINGS, DEFAULT_ROLLUPS, Retention, parse_duration
from telemetry import format_ts, is_valid_device_id
from telemetry.redaction import redact, register_secret

if TYPE_CHECKING:
    from hub.cluster.settings import ClusterSettings
    from hub.mqtt_bridge import HubMqttSettings
    from hub.server import TlsFiles

T = TypeVar("T")

logger = logging.getLogger(__name__)


class Exit(enum.IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2


def settings_of(args: argparse.Namespace) -> HubSettings:
    """The storage settings of a command, from its flags and the environment."""
    database: str | None = getattr(args, "database", None)
    return HubSettings.resolve(os.environ, database_url=database, retention=retention_of(args))


def retention_of(args: argparse.Namespace) -> Retention:
    """``--retain-readings`` / ``--retain-rollups``, else their variables, else the defaults.

    Every command opening the storage resolves it the same way: on TimescaleDB the
    retention policies are set at each start (hub/storage/schema.py), so a token
    command run without them would otherwise drop the hub's policies.
    """
    readings = _given(getattr(args, "retain_readings", None), "EMS_RETAIN_READINGS")
    rollups = _given(getattr(args, "retain_rollups", None), "EMS_RETAIN_ROLLUPS")
    try:
        kept_readings = (
            DEFAULT_READINGS if readings is None else parse_duration(readings, "--retain-readings")
        )
        if rollups is not None:
            kept_rollups = parse_duration(rollups, "--retain-rollups")
        else:
            # Off for readings means off for rollups too (they may not be shorter).
            kept_rollups = None if kept_readings is None else DEFAULT_ROLLUPS
        return Retention(readings=kept_readings, rollups=kept_rollups)
    except StorageConfigError as err:
        raise Failed(str(err), Exit.USAGE) from err


class Failed(Exception):
    """A one-line error; the command exits with ``code``."""

    def __init__(self, message: str, code: Exit = Exit.FAILURE) -> None:
        super().__init__(message)
        self.code = code


def _one_line(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A handler whose :class:`Failed` becomes one line on stderr and its exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except Failed as err:
            print(f"ems: {redact(str(err))}", file=sys.stderr)
            return err.code

    run.__doc__ = handler.__doc__
    return run


def _storage_failure(doing: str, err: StorageError) -> Failed:
    code = Exit.USAGE if isinstance(err, StorageConfigError) else Exit.FAILURE
    return Failed(f"{doing}: {err}", code)


def _quiet_storage(args: argparse.Namespace) -> None:
    # An interactive tool: storage's start-up chatter is noise here (-v brings it back).
    if not getattr(args, "verbose", False):
        logging.getLogger("hub.storage").setLevel(logging.WARNING)


async def _check_storage(settings: HubSettings) -> None:
    storage = await open_storage(
        settings.database_url, settings.data_dir, retention=settings.retention
    )
    await storage.close()


def viewer_token_of(args: argparse.Namespace) -> str | None:
    """The viewer token: ``--viewer-token-file``, deprecated ``--viewer-token``, then
    ``$EMS_VIEWER_TOKEN``; None leaves the dashboard door and the API open
    (docs/security.md, "Viewer access")."""
    path: str | None = getattr(args, "viewer_token_file", None)
    if path:
        file = Path(path)
        try:
            token = file.read_text(encoding="utf-8").strip()
            mode = file.stat().st_mode
        except (OSError, UnicodeDecodeError) as err:
            raise Failed(f"cannot read the viewer token file {path}: {err}", Exit.USAGE) from err
        if not token or "\n" in token:
            raise Failed(f"the viewer token file {path} must hold one non-empty line", Exit.USAGE)
        if mode & 0o077:
            logger.warning("%s is readable by other users (chmod 600 it)", path)
        return token
    given: str | None = getattr(args, "viewer_token", None)
    if given:
        logger.warning(
            "--viewer-token is visible to every local user in ps: "
            "use $EMS_VIEWER_TOKEN or --viewer-token-file instead"
        )
        return given
    return None  # HubSettings.resolve: $EMS_VIEWER_TOKEN


def allowed_origins_of(args: argparse.Namespace) -> tuple[str, ...]:
    """``--allow-origin`` (repeatable) and ``$EMS_ALLOW_ORIGINS``, normalized."""
    from hub.viewer_access import normalize_origin

    given = [*getattr(args, "allow_origin", []), *os.environ.get("EMS_ALLOW_ORIGINS", "").split()]
    try:
        return tuple(dict.fromkeys(normalize_origin(url) for url in given))
    except ValueError as err:
        raise Failed(f"--allow-origin: {err}", Exit.USAGE) from err


@_one_line
def serve(args: argparse.Namespace) -> int:
    """``ems hub serve``: the hub, until SIGTERM or SIGINT (then exit 0)."""
    import uvloop

    from hub.app import create_app
    from hub.server import HubServer, uvicorn_config
    from hub.storage import create_storage

    if not args.host.strip():
        # An empty host binds every interface: never by accident (a unit's
        # `--host ${EMS_HOST}` with the variable left empty).
        raise Failed("--host: empty (0.0.0.0 or :: binds every interface)", Exit.USAGE)
    try:
        tls = _tls_files(args)
    except ValueError as err:
        raise Failed(str(err)) from err
    viewer_token = viewer_token_of(args)
    allowed_origins = allowed_origins_of(args)
    trusted_proxies = _option(
        args, "--trusted-proxy", "EMS_TRUSTED_PROXIES", parse_trusted_proxies,
        DEFAULT_TRUSTED_PROXIES,
    )  # fmt: skip
    asked_limits = _asked_limits(args)
    # Every connection of a proxy comes from its address (hub/proxies.py).
    asked_limits = replace(
        asked_limits, exempt=exempt_with_proxies(asked_limits.exempt, trusted_proxies)
    )
    storage_settings = settings_of(args)
    cluster = cluster_of(args, storage_settings)
    mqtt = mqtt_of(args)
    workers: int = getattr(args, "workers", 1)
    if workers != 1:
        return _serve_workers(args, workers, cluster)
    # Redacted as literal values wherever they might show up in a log line or error.
    register_secret(viewer_token)
    if storage_settings.database_url:
        register_secret(urlsplit(storage_settings.database_url).password)
    where = describe_storage(storage_settings.database_url, storage_settings.data_dir)
    # Open (and migrate) once before serving: a database that is missing or does
    # not answer is one line here, not a traceback from inside uvicorn's start-up.
    level = logging.getLogger("hub.storage").level
    _quiet_storage(args)
    try:
        asyncio.run(_check_storage(storage_settings))
        storage = create_storage(
            storage_settings.database_url,
            storage_settings.data_dir,
            retention=storage_settings.retention,
        )
    except StorageError as err:
        raise _storage_failure(f"cannot open storage ({where})", err) from err
    logging.getLogger("hub.storage").setLevel(level)
    fd_limit = raise_fd_limit()
    settings = HubSettings.resolve(
        os.environ,
        database_url=storage_settings.database_url,
        retention=storage_settings.retention,
        viewer_token=viewer_token,
        allowed_origins=allowed_origins,
        limits=_fitted(asked_limits, fd_limit.soft),
        cluster=cluster,
        mqtt=mqtt,
    )
    register_secret(settings.viewer_token)  # or the one from $EMS_VIEWER_TOKEN
    logging.getLogger(__name__).info("storage: %s", where)
    logging.getLogger(__name__).info(
        "client addresses from X-Forwarded-For of: %s",
        ", ".join(trusted_proxies) or "no one (--trusted-proxy none)",
    )
    if cluster is not None:
        logging.getLogger(__name__).info(
            "cluster: hub %s, Redis %s", cluster.hub_id, redact(cluster.url)
        )
    app = create_app(settings, storage=storage)
    config = uvicorn_config(
        app,
        args.host,
        args.port,
        log_level="debug" if getattr(args, "verbose", False) else "info",
        tls=tls,
        trusted_proxies=trusted_proxies,
    )
    server = HubServer(config, app)
    sockets = None
    if getattr(args, "reuse_port", False):
        # A worker of --workers: its own socket on the shared port (hub/cluster/workers.py).
        from hub.cluster.workers import reuse_port_socket

        sockets = [reuse_port_socket(args.host, args.port)]
        logging.getLogger(__name__).info(
            "hub worker %s listening on %s:%d",
            os.environ.get("EMS_WORKER", "?"),
            args.host,
            args.port,
        )
    try:
        uvloop.run(server.serve(sockets))
    except SystemExit as err:  # uvicorn's way out when it cannot bind, logged above
        raise Failed("the hub did not start (see the log above)") from err
    if not server.started:
        raise Failed("the hub did not start (see the log above)")
    return Exit.OK


def mqtt_of(args: argparse.Namespace) -> HubMqttSettings | None:
    """``--mqtt URL`` or ``$EMS_MQTT_URL``: every site's live readings to Home Assistant."""
    from hub.mqtt_bridge import MqttSettingsError, mqtt_settings

    try:
        settings = mqtt_settings(
            getattr(args, "mqtt", None),
            password_file=getattr(args, "mqtt_password_file", None),
            ca_file=getattr(args, "mqtt_ca_file", None),
        )
    except MqttSettingsError as err:
        raise Failed(str(err), Exit.USAGE) from err
    if settings is not None:
        link = settings.link
        logger.info("Home Assistant over MQTT: %s:%d as %s", link.host, link.port, link.client_id)
    return settings


def _serve_workers(args: argparse.Namespace, workers: int, cluster: ClusterSettings | None) -> int:
    """``--workers N``: a supervisor of N hub processes (hub/cluster/workers.py)."""
    from hub.cluster.workers import Supervisor

    if workers < 1:
        raise Failed(f"--workers: expected 1 or more, got {workers}", Exit.USAGE)
    if cluster is None:
        raise Failed(
            "--workers needs --cluster (or EMS_CLUSTER_URL): the workers share devices "
            "and dashboards through Redis",
            Exit.USAGE,
        )
    from hub.cluster.settings import ClusterConfigError

    try:
        supervisor = Supervisor(sys.argv[1:], workers, args.host, args.port, cluster.hub_id)
    except ClusterConfigError as err:
        raise Failed(str(err), Exit.USAGE) from err
    except OSError as err:
        raise Failed(f"cannot bind {args.host}:{args.port}: {err}") from err
    return supervisor.run()


def cluster_of(args: argparse.Namespace, storage: HubSettings) -> ClusterSettings | None:
    """``--cluster`` or ``$EMS_CLUSTER_URL`` (and ``$EMS_CLUSTER_HUB_ID``); None: a hub alone."""
    from hub.cluster.settings import ClusterConfigError, ClusterSettings

    url = _given(getattr(args, "cluster", None), "EMS_CLUSTER_URL")
    if url is None:
        return None
    if storage.database_url is None:
        raise Failed(
            "--cluster needs PostgreSQL storage (--database or EMS_DATABASE_URL): "
            "SQLite is one hub's file",
            Exit.USAGE,
        )
    register_secret(urlsplit(url).password)
    try:
        return ClusterSettings.from_url(url, _given(None, "EMS_CLUSTER_HUB_ID"))
    except ClusterConfigError as err:
        raise Failed(str(err), Exit.USAGE) from err


def _tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The hub's TLS files; None: plain HTTP. ValueError says why they cannot be used."""
    from hub.server import TlsFiles

    cert = _given(args.tls_cert, "EMS_TLS_CERT")
    key = _given(args.tls_key, "EMS_TLS_KEY")
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    for flag, name in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(name).is_file():
            raise ValueError(f"{flag}: no such file: {name}")
    return TlsFiles(cert=Path(cert), key=Path(key))


def _given(flag: str | None, variable: str) -> str | None:
    """A flag's text, else its environment variable's (empty: unset), else None."""
    if flag is not None:
        return flag
    return os.environ.get(variable, "").strip() or None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected seconds") from None
    if not 0 <= value <= 86_400:
        raise ValueError("expected 0 (off) to 86400 seconds")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 0:
        raise ValueError("expected 0 (no cap) or more")
    return value


def _option(
    args: argparse.Namespace, flag: str, variable: str, parse: Callable[[str], T], default: T
) -> T:
    """A limit from its flag, else its variable, else ``default``; a bad value is one line."""
    given: str | None = getattr(args, flag.removeprefix("--").replace("-", "_"))
    text = _given(given, variable)
    if text is None:
        return default
    try:
        return parse(text)
    except ValueError as err:
        where = flag if given is not None else f"${variable}"
        raise Failed(f"{where}: {text!r}: {err}", Exit.USAGE) from err


def _asked_limits(args: argparse.Namespace) -> ConnectionLimits:
    """The limits given by flags and environment, checked; not yet fitted to the fd limit."""
    d = ConnectionLimits()
    exempt = _given(args.limit_exempt, "EMS_LIMIT_EXEMPT")
    asked = ConnectionLimits(
        handshake_timeout_s=_option(
            args, "--handshake-timeout", "EMS_HANDSHAKE_TIMEOUT", _seconds, d.handshake_timeout_s
        ),
        device_idle_timeout_s=_option(
            args,
            "--device-idle-timeout",
            "EMS_DEVICE_IDLE_TIMEOUT",
            _seconds,
            d.device_idle_timeout_s,
        ),
        max_pending=_option(args, "--max-pending", "EMS_MAX_PENDING", _count, d.max_pending),
        max_pending_per_address=_option(
            args,
            "--max-pending-per-address",
            "EMS_MAX_PENDING_PER_ADDRESS",
            _count,
            d.max_pending_per_address,
        ),
        max_dashboards=_option(
            args, "--max-dashboards", "EMS_MAX_DASHBOARDS", _count, d.max_dashboards
        ),
        max_dashboards_per_address=_option(
            args,
            "--max-dashboards-per-address",
            "EMS_MAX_DASHBOARDS_PER_ADDRESS",
            _count,
            d.max_dashboards_per_address,
        ),
        viewer_guesses=_option(
            args, "--viewer-guesses", "EMS_VIEWER_GUESSES", _count, d.viewer_guesses
        ),
        exempt=(
            tuple(a.strip() for a in exempt.split(",") if a.strip())
            if exempt is not None
            else d.exempt
        ),
    )
    return asked


def _fitted(asked: ConnectionLimits, fd_limit: int) -> ConnectionLimits:
    limits = asked.fitted(fd_limit)
    if limits != asked:
        logging.getLogger("hub.limits").warning(
            "%d file descriptors allow at most %d pending connections (%d per address) and "
            "%d dashboards: raise the hard limit (LimitNOFILE=) for more",
            fd_limit,
            limits.max_pending,
            limits.max_pending_per_address,
            limits.max_dashboards,
        )
    return limits


def _with_storage(
    args: argparse.Namespace, doing: str, work: Callable[[Storage], Awaitable[T]]
) -> T:
    """``work`` on the command's storage, which is named on stderr."""
    settings = settings_of(args)
    _quiet_storage(args)
    print(
        f"ems: storage: {describe_storage(settings.database_url, settings.data_dir)}",
        file=sys.stderr,
    )

    async def run() -> T:
        async with storage_from_url(
            settings.database_url, settings.data_dir, retention=settings.retention
        ) as storage:
            return await work(storage)

    try:
        return asyncio.run(run())
    except StorageError as err:
        raise _storage_failure(doing, err) from err


def _device_id(args: argparse.Namespace) -> str:
    device_id: str = args.device_id
    if not is_valid_device_id(device_id):
        raise Failed(f"invalid device id {device_id!r}: 1 to 64 of A-Z a-z 0-9 _ - .", Exit.USAGE)
    return device_id


@_one_line
def token_add(args: argparse.Namespace) -> int:
    """``ems hub token add``: a new token, printed once on the last line of stdout."""
    device_id = _device_id(args)
    token = new_token()
    record = TokenRecord(device_id, hash_token(token), datetime.now(UTC))

    async def add(storage: Storage) -> None:
        await storage.add_token(record)

    _with_storage(args, "cannot store the token", add)
    print(f"token for {device_id} (shown once; the hub keeps only its hash):")
    print(token)
    return Exit.OK


@_one_line
def token_list(args: argparse.Namespace) -> int:
    """``ems hub token list``: device ids and their tokens' creation times."""

    async def tokens(storage: Storage) -> list[TokenRecord]:
        return await storage.tokens()

    records = _with_storage(args, "cannot read tokens", tokens)
    if not records:
        print("no device tokens (create one with: ems hub token add DEVICE_ID)")
    for record in records:
        print(f"{record.device_id}\t{format_ts(record.created_at)}")
    return Exit.OK


@_one_line
def token_revoke(args: argparse.Namespace) -> int:
    """``ems hub token revoke``: every token of a device; its socket is closed within seconds."""
    device_id = _device_id(args)

    async def revoke(storage: Storage) -> int:
        return await storage.revoke_tokens(device_id)

    count = _with_storage(args, "cannot revoke", revoke)
    if count == 0:
        raise Failed(f"no token for {device_id}")
    print(f"revoked {count} token(s) of {device_id}; a connected device is closed within seconds")
    return Exit.OK
