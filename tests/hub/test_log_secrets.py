"""No secret in any log line of a real hub process, and refusals within one budget.

``ems -v hub serve`` runs at debug level (uvicorn's and websockets' debug lines
included) on PostgreSQL through a URL that carries a password; devices and
dashboards connect with every form of credential the hub accepts, right and
wrong; then the whole log (stdout and stderr, start to SIGTERM) is searched for
each secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.hub import reading, recv_ack_seqs, recv_json

LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
VIEWER_TOKEN = "viewer-secret-4c1d9e"
DB_PASSWORD = "db-pass-7f3a2b"
WRONG_GUESS = "guessed-token-93e0aa"


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def ems(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ems", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@dataclass
class LoggedHub:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str]
    database: str

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(timeout=20) == 0, self.log()[-3000:]


def start_hub(tmp_path: Path, *args: str, env: dict[str, str]) -> LoggedHub:
    log_path = tmp_path / "hub.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ems", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 60
    while True:
        text = log_path.read_bytes()
        match = LISTENING.search(text)
        if match:
            database = args[args.index("--database") + 1] if "--database" in args else ""
            return LoggedHub(process, int(match[1]), log_path, env, database)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(text.decode(errors="replace"))
        time.sleep(0.05)


@pytest.fixture
def pg_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "EMS_DATA_DIR": str(tmp_path / "data")}
    env.pop("EMS_DATABASE_URL", None)
    env.pop("EMS_ALLOW_ORIGINS", None)
    return env


@pytest.fixture
def logged_hub(tmp_path: Path, postgres_url: str, pg_env: dict[str, str]) -> Iterator[LoggedHub]:
    database = with_password(postgres_url, DB_PASSWORD)
    token_file = tmp_path / "viewer-token"
    token_file.write_text(VIEWER_TOKEN + "\n")
    token_file.chmod(0o600)
    hub = start_hub(
        tmp_path,
        "-v",
        "hub",
        "serve",
        "--port",
        "0",
        "--database",
        database,
        "--viewer-token-file",
        str(token_file),
        env=pg_env,
    )
    try:
        yield hub
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait()


async def test_no_secret_reaches_the_log(logged_hub: LoggedHub) -> None:
    hub = logged_hub
    added = await asyncio.to_thread(
        ems, hub.env, "hub", "token", "--database", hub.database, "add", "secret_dev"
    )
    assert added.returncode == 0, added.stderr
    device_token = added.stdout.strip().splitlines()[-1]
    secrets = {VIEWER_TOKEN, DB_PASSWORD, WRONG_GUESS, device_token}

    # A device streams: its token goes in the Authorization header.
    async def device_connects() -> None:
        async with connect(
            hub.ws("/ws/device/secret_dev"),
            additional_headers={"Authorization": f"Bearer {device_token}"},
        ) as device:
            await device.send(json.dumps(reading(1)))
            assert await recv_ack_seqs(device, {1}) >= {1}

    for _ in range(40):  # the token book is refreshed about once a second
        try:
            await device_connects()
            break
        except InvalidStatus:
            await asyncio.sleep(0.25)
    else:
        raise AssertionError("the device was never accepted")

    # Dashboards: ?token= (what the dashboard used to do), the header, the cookie.
    async with connect(hub.ws(f"/ws/dashboard/secret_dev?token={VIEWER_TOKEN}")) as dashboard:
        assert (await recv_json(dashboard))["type"] == "status"
    async with connect(
        hub.ws("/ws/dashboard/secret_dev"),
        additional_headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
    ) as dashboard:
        assert (await recv_json(dashboard))["type"] == "status"
    async with httpx.AsyncClient(base_url=hub.http) as http:
        login = await http.post("/api/session", json={"token": VIEWER_TOKEN})
        assert login.status_code == 204, login.text
        session = login.cookies["ems_viewer"]
        secrets.add(session)
        async with connect(
            hub.ws("/ws/dashboard/secret_dev"),
            additional_headers={"Cookie": f"ems_viewer={session}"},
        ) as dashboard:
            assert (await recv_json(dashboard))["type"] == "status"
        http.cookies.clear()
        assert (await http.get(f"/api/devices?token={VIEWER_TOKEN}")).status_code == 200
        assert (await http.get("/api/devices", params={"token": WRONG_GUESS})).status_code == 401
        assert (await http.post("/api/session", json={"token": WRONG_GUESS})).status_code == 401
    # Wrong credentials at both doors: refused, and not logged either.
    for url, headers in [
        (hub.ws(f"/ws/dashboard/secret_dev?token={WRONG_GUESS}"), None),
        (hub.ws("/ws/dashboard/secret_dev"), {"Authorization": f"Bearer {WRONG_GUESS}"}),
        (hub.ws("/ws/device/secret_dev"), {"Authorization": f"Bearer {WRONG_GUESS}"}),
        (hub.ws(f"/ws/device/secret_dev?token={device_token}"), None),
    ]:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 403

    # The CLI: a storage error naming the URL (nothing listens on port 1).
    unreachable = with_password("postgresql://postgres@127.0.0.1:1/nowhere", DB_PASSWORD)
    failed = await asyncio.to_thread(
        ems, hub.env, "-v", "hub", "token", "--database", unreachable, "list"
    )
    assert failed.returncode != 0

    await asyncio.to_thread(hub.stop)
    log = hub.log()
    # The log is the real thing: uvicorn's and websockets' debug lines are in it.
    assert '"WebSocket /ws/dashboard/secret_dev?token=[redacted]" [accepted]' in log, log[-3000:]
    assert "DEBUG uvicorn.error: = connection is" in log  # the websockets layer's own
    assert "dashboard door refused" in log
    cli_output = failed.stdout + failed.stderr + added.stderr
    for secret in secrets:
        assert secret not in log, f"{secret!r} is in the hub's log"
        assert secret not in cli_output, f"{secret!r} is in the CLI's output"


async def test_a_refusal_flood_writes_a_bounded_number_of_lines(
    tmp_path: Path, pg_env: dict[str, str]
) -> None:
    hub = await asyncio.to_thread(
        start_hub, tmp_path, "hub", "serve", "--port", "0", "--max-dashboards", "1", env=pg_env
    )
    try:
        before = len(hub.log().splitlines())
        refusals = 0
        # One dashboard holds the only place; 100 more are turned away at the cap.
        async with connect(hub.ws("/ws/dashboard/ems_001")) as holder:
            assert (await recv_json(holder))["type"] == "status"
            for _ in range(100):
                async with connect(hub.ws("/ws/dashboard/ems_001")) as late:
                    with pytest.raises(ConnectionClosed) as closed:
                        await late.recv()
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 1013
        for index in range(100):
            for url, headers in [
                (hub.ws(f"/ws/device/dev_{index}"), {"Authorization": "Bearer nope"}),
                (hub.ws(f"/ws/device/dev_{index}"), None),
                (hub.ws("/ws/device/bad%20id"), None),
                (hub.ws("/ws/dashboard/bad%20id"), None),
            ]:
                with pytest.raises(InvalidStatus):
                    async with connect(url, additional_headers=headers):
                        pass
                refusals += 1
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{hub.http}/metrics")).text
        await asyncio.to_thread(hub.stop)
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait()
    assert refusals == 400
    total = sum(
        float(line.rpartition(" ")[2])
        for line in metrics.splitlines()
        if line.startswith("ems_refused_total")
    )
    assert total == refusals  # every one counted
    capped = sum(
        float(line.rpartition(" ")[2])
        for line in metrics.splitlines()
        if line.startswith("ems_connections_refused_total") and "dashboards" in line
    )
    assert capped == 100
    lines = hub.log().splitlines()[before:]
    lines = lines[: next(i for i, line in enumerate(lines) if "received SIGTERM" in line)]
    # The hub's budget: 20 lines a minute for all doors together, uvicorn's lines gone
    # (its per-socket lines are debug-level: the capped dashboards write none), and
    # the caps' own report, one line a minute at most (hub/limits.py).
    reports = [line for line in lines if "connection caps reached" in line]
    assert len(reports) <= 1
    assert 1 <= len(lines) - len(reports) <= 20, "\n".join(lines[:50])
    assert not any('" 403' in line or "connection rejected" in line for line in lines)
    assert not any("[accepted]" in line or "connection open" in line for line in lines)


def run_serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``ems hub serve`` that is expected to stop by itself (a bad option, storage down)."""
    return ems(env, "hub", "serve", "--port", "0", *args)


def test_viewer_token_sources_and_their_warnings(tmp_path: Path, pg_env: dict[str, str]) -> None:
    # The environment: nothing on the command line, nothing for ps to show.
    hub = start_hub(
        tmp_path, "hub", "serve", "--port", "0", env={**pg_env, "EMS_VIEWER_TOKEN": VIEWER_TOKEN}
    )
    try:
        cmdline = Path(f"/proc/{hub.process.pid}/cmdline").read_bytes()
        assert VIEWER_TOKEN.encode() not in cmdline
        with httpx.Client(base_url=hub.http) as http:
            assert http.get("/api/devices").status_code == 401
            assert http.get(
                "/api/devices", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}
            ).is_success
        hub.stop()
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
    assert "--viewer-token" not in hub.log()  # no warning about the token's source

    # The deprecated flag still works, and says why it should not be used.
    deprecated_dir = tmp_path / "deprecated"
    deprecated_dir.mkdir()
    hub = start_hub(
        deprecated_dir, "hub", "serve", "--port", "0", "--viewer-token", VIEWER_TOKEN, env=pg_env
    )
    try:
        with httpx.Client(base_url=hub.http) as http:
            assert http.get("/api/devices").status_code == 401
        hub.stop()
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
    assert "--viewer-token is visible to every local user in ps" in hub.log()
    assert VIEWER_TOKEN not in hub.log()

    # A token file others can read: served, with a warning.
    loose = tmp_path / "loose-token"
    loose.write_text(VIEWER_TOKEN + "\n")
    loose.chmod(0o644)
    loose_dir = tmp_path / "loose"
    loose_dir.mkdir()
    hub = start_hub(
        loose_dir, "hub", "serve", "--port", "0", "--viewer-token-file", str(loose), env=pg_env
    )
    try:
        hub.stop()
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
    assert "is readable by other users (chmod 600 it)" in hub.log()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--viewer-token-file", "/nonexistent/viewer-token"), "cannot read the viewer token file"),
        (("--allow-origin", "https://friend.example/dashboard"), "an origin has no path"),
        (("--allow-origin", "friend.example"), "not an origin"),
    ],
)
def test_bad_viewer_options_are_one_clear_line(
    pg_env: dict[str, str], args: tuple[str, ...], says: str
) -> None:
    done = run_serve(pg_env, *args)
    assert done.returncode == 2  # a usage error
    assert says in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("ems: ")


def test_an_empty_token_file_is_refused(tmp_path: Path, pg_env: dict[str, str]) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    done = run_serve(pg_env, "--viewer-token-file", str(empty))
    assert done.returncode == 2  # a usage error
    assert "must hold one non-empty line" in done.stderr


def test_storage_down_at_start_does_not_log_the_password(pg_env: dict[str, str]) -> None:
    unreachable = with_password("postgresql://postgres@127.0.0.1:1/nowhere", DB_PASSWORD)
    done = run_serve({**pg_env, "EMS_VIEWER_TOKEN": VIEWER_TOKEN}, "--database", unreachable)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "127.0.0.1" in output or "storage" in output.lower(), output
    assert DB_PASSWORD not in output
    assert VIEWER_TOKEN not in output
