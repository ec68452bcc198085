"""What the benchmarks share: ``ems hub serve`` as a subprocess, tokens from the CLI, free ports.

Every benchmark runs the hub as its own process, as an installer would, so
its CPU and memory are measured apart from the load generators'.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMS = [sys.executable, "-m", "ems"]
# uvicorn logs this once the app's start-up (storage open, tokens loaded) is done.
SERVING = re.compile(rb"Uvicorn running on http://[\d.]+:(\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_line(process: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[bytes]) -> int:
    """The integer the first match of ``pattern`` in ``log`` captures; exits if the server dies."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        match = pattern.search(log.read_bytes())
        if match:
            return int(match[1])
        time.sleep(0.05)
    raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")


def start_hub(
    log: Path, env: dict[str, str], database: str | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``ems hub serve`` on an ephemeral port, logging to ``log``; the process and its port.

    ``database``: a ``postgresql://`` URL; None stores in the embedded SQLite file
    under ``env["EMS_DATA_DIR"]``.
    """
    command = [*EMS, "hub", "serve", "--port", "0"]
    if database is not None:
        command += ["--database", database]
    with log.open("wb") as out:
        hub = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=out, env=env, cwd=ROOT)
    try:
        return hub, wait_for_line(hub, log, SERVING)
    except BaseException:
        hub.kill()
        hub.wait()
        raise


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGTERM (a no-op if it has exited), then wait; the exit code."""
    if process.poll() is None:
        process.terminate()
    return process.wait(timeout_s)


def add_token(env: dict[str, str], device_id: str) -> str:
    """A device token made by ``ems hub token add`` (it prints the token on its last line)."""
    done = subprocess.run(
        [*EMS, "hub", "token", "add", device_id],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.strip().splitlines()[-1]


async def store_tokens(
    database: str | None, data_dir: Path | None, device_ids: list[str]
) -> list[tuple[str, str]]:
    """A new token for each device, stored straight into the hub's storage 100 at a time.

    (``ems hub token add`` per device would start a process each: minutes for 10,000.)
    """
    sys.path.insert(0, str(ROOT))
    from hub.auth import hash_token, new_token
    from hub.storage import storage_from_url
    from hub.storage.base import TokenRecord

    tokens = [(device_id, new_token()) for device_id in device_ids]
    now = datetime.now(UTC)
    async with storage_from_url(database, data_dir) as storage:
        for first in range(0, len(tokens), 100):
            await asyncio.gather(
                *(
                    storage.add_token(TokenRecord(device_id, hash_token(token), now))
                    for device_id, token in tokens[first : first + 100]
                )
            )
    return tokens
