"""A TimescaleDB server for the suite: the one a variable names, or a throw-away cluster.

``EMS_TEST_TIMESCALEDB_URL`` names a server (its admin URL, like ``EMS_TEST_POSTGRES``)
that preloads TimescaleDB; each test that needs it creates a database there and drops
it. Unset, the suite starts a throw-away cluster with the provisioning tool: the file
``EMS_TIMESCALEDB_TOOL`` names, else ``shared/tools/timescaledb`` in the checkout's
parent folder or one above it (where the project's machines keep it). The tool's
``start DIR PORT`` creates a cluster in ``DIR`` preloading TimescaleDB and prints
its URL; ``stop DIR`` stops it and deletes ``DIR``. It runs as root (it switches to
the ``postgres`` user), so ``DIR`` is under ``/tmp``.

Neither there: :class:`TimescaleUnavailable`, which the fixture turns into a failure
saying what to set. A missing TimescaleDB never skips a test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.support.ports import free_port

URL_VARIABLE: Final = "EMS_TEST_TIMESCALEDB_URL"
TOOL_VARIABLE: Final = "EMS_TIMESCALEDB_TOOL"
TOOL_PATH: Final = Path("shared", "tools", "timescaledb")
# initdb, start and (first time on a machine) building the extension: ~2 min.
START_TIMEOUT_S: Final = 900.0
STOP_TIMEOUT_S: Final = 120.0
# A port another process took between free_port() and the server's bind: try another.
START_ATTEMPTS: Final = 3


class TimescaleUnavailable(RuntimeError):
    """No TimescaleDB server for the tests, and why."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """A throw-away cluster the tool started: its folder and admin URL."""

    tool: Path
    directory: Path
    url: str


def find_tool(checkout: Path, environ: Mapping[str, str]) -> Path | None:
    """The provisioning tool: ``EMS_TIMESCALEDB_TOOL``, else the first ``shared/tools/timescaledb``
    in a folder above ``checkout``; None when there is none."""
    named = environ.get(TOOL_VARIABLE, "")
    if named:
        path = Path(named)
        if not path.is_file():
            raise TimescaleUnavailable(f"{TOOL_VARIABLE}={named}: no such file")
        return path
    for folder in checkout.resolve().parents:
        candidate = folder / TOOL_PATH
        if candidate.is_file():
            return candidate
    return None


def _run_tool(tool: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    # Through bash: a copied tool may have lost its execute bit.
    return subprocess.run(
        ["bash", str(tool), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def start_cluster(tool: Path) -> Cluster:
    """A new cluster on a free port, in a new folder under /tmp."""
    failures = []
    for _ in range(START_ATTEMPTS):
        directory = Path("/tmp", f"ems-tsdb-{os.getpid()}-{secrets.token_hex(4)}")
        done = _run_tool(tool, "start", str(directory), str(free_port()), timeout=START_TIMEOUT_S)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines and lines[-1].startswith("postgresql://"):
            return Cluster(tool, directory, lines[-1])
        failures.append(f"exit {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
        _run_tool(tool, "stop", str(directory), timeout=STOP_TIMEOUT_S)
    raise TimescaleUnavailable(f"{tool} start failed: " + "; ".join(failures))


def stop_cluster(cluster: Cluster) -> None:
    done = _run_tool(cluster.tool, "stop", str(cluster.directory), timeout=STOP_TIMEOUT_S)
    if done.returncode != 0:
        raise TimescaleUnavailable(
            f"{cluster.tool} stop {cluster.directory}: exit {done.returncode}: {done.stderr}"
        )


@contextlib.contextmanager
def timescaledb_server(checkout: Path, environ: Mapping[str, str]) -> Iterator[str]:
    """The admin URL of a TimescaleDB server for this run (see the module docstring)."""
    url = environ.get(URL_VARIABLE, "")
    if url:
        yield url
        return
    tool = find_tool(checkout, environ)
    if tool is None:
        raise TimescaleUnavailable(
            f"no TimescaleDB for the tests: set {URL_VARIABLE} to a server that preloads "
            f"it, or {TOOL_VARIABLE} to the provisioning tool (none found as "
            f"{TOOL_PATH} above {checkout})"
        )
    cluster = start_cluster(tool)
    try:
        yield cluster.url
    finally:
        stop_cluster(cluster)
