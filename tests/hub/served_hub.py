"""``ems hub serve`` as a real process on an ephemeral port, for tests from outside.

For what only a process shows: its own file-descriptor limit (set in the child
before it starts), its TLS, its whole log on stderr. Device tokens are made with
``ems hub token add`` like an operator would.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LISTENING = re.compile(rb"Uvicorn running on (https?)://127\.0\.0\.1:(\d+)")


@dataclass
class ServedHub:
    process: subprocess.Popen[bytes]
    scheme: str
    port: int
    log_path: Path

    @property
    def http(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def hub_env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "EMS_DATA_DIR": str(data_dir)}
    for name in list(env):
        if name.startswith("EMS_") and name != "EMS_DATA_DIR":
            del env[name]  # the defaults under test, not the caller's settings
    return env


def add_token(data_dir: Path, device_id: str) -> str:
    """``ems hub token add``: the token, from the last line of its output."""
    done = subprocess.run(
        [sys.executable, "-m", "ems", "hub", "token", "add", device_id],
        capture_output=True,
        text=True,
        env=hub_env(data_dir),
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _fd_limit(limit: int | tuple[int, int]) -> Callable[[], None]:
    soft, hard = limit if isinstance(limit, tuple) else (limit, limit)

    def apply() -> None:  # runs in the child, before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


@contextlib.contextmanager
def served_hub(
    data_dir: Path,
    *args: str,
    log_path: Path,
    fd_limit: int | tuple[int, int] | None = None,  # RLIMIT_NOFILE: both, or (soft, hard)
    env: dict[str, str] | None = None,
    verbose: bool = False,
) -> Iterator[ServedHub]:
    """``ems [-v] hub serve --port 0 ARGS`` with ``env`` added; stopped on the way out."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "ems"),
                *(["-v"] if verbose else []),
                *("hub", "serve", "--port", "0", *args),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**hub_env(data_dir), **(env or {})},
            preexec_fn=_fd_limit(fd_limit) if fd_limit is not None else None,
        )
    try:
        deadline = time.monotonic() + 60
        while (match := LISTENING.search(log_path.read_bytes())) is None:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield ServedHub(process, match[1].decode(), int(match[2]), log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
