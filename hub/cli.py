"""Handlers of ``ems hub ...`` (declared in ems/cli.py; DESIGN.md, "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from hub.auth import hash_token, new_token
from hub.limits import ConnectionLimits, raise_fd_limit
from hub.storage import create_storage, storage_from_url
from hub.storage.base import Storage, StorageError, TokenRecord
from telemetry import format_ts, is_valid_device_id
from telemetry.redaction import redact, register_secret

if TYPE_CHECKING:
    from hub.server import TlsFiles

T = TypeVar("T")

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = "ems-data"


def data_dir() -> Path:
    return Path(os.environ.get("EMS_DATA_DIR", DEFAULT_DATA_DIR))


def _fail(message: str) -> int:
    print(f"ems: {redact(message)}", file=sys.stderr)
    return 1


class ConfigError(Exception):
    """A serve option that cannot be used; the message says which and why."""


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
            raise ConfigError(f"cannot read the viewer token file {path}: {err}") from err
        if not token or "\n" in token:
            raise ConfigError(f"the viewer token file {path} must hold one non-empty line")
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
    return os.environ.get("EMS_VIEWER_TOKEN") or None


def allowed_origins_of(args: argparse.Namespace) -> tuple[str, ...]:
    """``--allow-origin`` (repeatable) and ``$EMS_ALLOW_ORIGINS``, normalized."""
    from hub.viewer_access import normalize_origin

    given = [*getattr(args, "allow_origin", []), *os.environ.get("EMS_ALLOW_ORIGINS", "").split()]
    try:
        return tuple(dict.fromkeys(normalize_origin(url) for url in given))
    except ValueError as err:
        raise ConfigError(f"--allow-origin: {err}") from err


def serve(args: argparse.Namespace) -> int:
    import uvloop

    from hub.app import create_app
    from hub.runtime import HubSettings
    from hub.server import HubServer, uvicorn_config

    try:
        tls = _tls_files(args)
        viewer_token = viewer_token_of(args)
        allowed_origins = allowed_origins_of(args)
    except (ValueError, ConfigError) as err:
        return _fail(str(err))
    # Also redacted as literal values wherever they might show up in a log line.
    register_secret(viewer_token)
    if args.database:
        register_secret(urlsplit(args.database).password)
    fd_limit = raise_fd_limit()
    settings = HubSettings(
        database_url=args.database,
        data_dir=data_dir(),
        viewer_token=viewer_token,
        allowed_origins=allowed_origins,
        limits=_limits(args, fd_limit.soft),
    )
    try:
        storage = create_storage(settings.database_url, settings.data_dir)
    except StorageError as err:
        return _fail(str(err))
    app = create_app(settings, storage=storage)
    config = uvicorn_config(
        app,
        args.host,
        args.port,
        log_level="debug" if getattr(args, "verbose", False) else "info",
        tls=tls,
    )
    server = HubServer(config, app)
    uvloop.run(server.serve())
    if not server.started:
        return _fail("the hub did not start (see the log above)")
    return 0


def _tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The hub's TLS files; None: plain HTTP. ValueError says why they cannot be used."""
    from hub.server import TlsFiles

    cert, key = args.tls_cert, args.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    for flag, name in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(name).is_file():
            raise ValueError(f"{flag}: no such file: {name}")
    return TlsFiles(cert=Path(cert), key=Path(key))


def _limits(args: argparse.Namespace, fd_limit: int) -> ConnectionLimits:
    asked = ConnectionLimits(
        handshake_timeout_s=args.handshake_timeout,
        device_idle_timeout_s=args.device_idle_timeout,
        max_pending=args.max_pending,
        max_pending_per_address=args.max_pending_per_address,
        max_dashboards=args.max_dashboards,
        max_dashboards_per_address=args.max_dashboards_per_address,
        exempt=tuple(a.strip() for a in args.limit_exempt.split(",") if a.strip()),
    )
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


def _with_storage(database: str | None, work: Callable[[Storage], Awaitable[T]]) -> T:
    # An interactive tool: storage's start-up chatter is noise here (-v brings it back).
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("hub.storage").setLevel(logging.WARNING)

    async def run() -> T:
        async with storage_from_url(database, data_dir()) as storage:
            return await work(storage)

    return asyncio.run(run())


def token_add(args: argparse.Namespace) -> int:
    device_id: str = args.device_id
    if not is_valid_device_id(device_id):
        return _fail(f"invalid device id {device_id!r}: 1 to 64 of A-Z a-z 0-9 _ - .")
    token = new_token()
    record = TokenRecord(device_id, hash_token(token), datetime.now(UTC))
    try:
        _with_storage(args.database, lambda storage: storage.add_token(record))
    except StorageError as err:
        return _fail(f"cannot store the token: {err}")
    print(f"token for {device_id} (shown once; the hub keeps only its hash):")
    print(token)
    return 0


def token_list(args: argparse.Namespace) -> int:
    try:
        records = _with_storage(args.database, lambda storage: storage.tokens())
    except StorageError as err:
        return _fail(f"cannot read tokens: {err}")
    for record in records:
        print(f"{record.device_id}\t{format_ts(record.created_at)}")
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    device_id: str = args.device_id
    if not is_valid_device_id(device_id):
        return _fail(f"invalid device id {device_id!r}: 1 to 64 of A-Z a-z 0-9 _ - .")
    try:
        count = _with_storage(args.database, lambda storage: storage.revoke_tokens(device_id))
    except StorageError as err:
        return _fail(f"cannot revoke: {err}")
    if count == 0:
        return _fail(f"no token for {device_id}")
    print(f"revoked {count} token(s) of {device_id}; a connected device is closed within seconds")
    return 0
