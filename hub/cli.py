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
from typing import TypeVar

from hub.auth import hash_token, new_token
from hub.storage import create_storage, storage_from_url
from hub.storage.base import Storage, StorageError, TokenRecord
from telemetry import format_ts, is_valid_device_id

T = TypeVar("T")

DEFAULT_DATA_DIR = "ems-data"


def data_dir() -> Path:
    return Path(os.environ.get("EMS_DATA_DIR", DEFAULT_DATA_DIR))


def _fail(message: str) -> int:
    print(f"ems: {message}", file=sys.stderr)
    return 1


def serve(args: argparse.Namespace) -> int:
    import uvloop

    from hub.app import create_app
    from hub.runtime import HubSettings
    from hub.server import HubServer, uvicorn_config

    settings = HubSettings(
        database_url=args.database, data_dir=data_dir(), viewer_token=args.viewer_token or None
    )
    try:
        storage = create_storage(settings.database_url, settings.data_dir)
    except StorageError as err:
        return _fail(str(err))
    app = create_app(settings, storage=storage)
    config = uvicorn_config(
        app, args.host, args.port, log_level="debug" if getattr(args, "verbose", False) else "info"
    )
    server = HubServer(config, app)
    uvloop.run(server.serve())
    if not server.started:
        return _fail("the hub did not start (see the log above)")
    return 0


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
