"""A hub alone stays as simple as before the cluster: no redis import, hub or demo.

Both run as real processes with ``PYTHONPROFILEIMPORTTIME=1`` (``python -X
importtime``): every module a process imports, whenever it does, is a line on its
stderr, so a redis import on any path served here (start, a request, a dashboard,
a device's readings, the stop) would show.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from tests.edge.hubproc import REPO
from tests.hub.served_hub import served_hub
from tests.support.hub import recv_json
from tests.support.ports import free_port

IMPORT_TIME = {"PYTHONPROFILEIMPORTTIME": "1"}
IMPORTED = re.compile(rb"^import time:[^|]*\|[^|]*\|\s+(\S+)\s*$", re.MULTILINE)


def _imports(log: bytes) -> list[str]:
    """The modules named in ``-X importtime`` lines; asserts there are such lines."""
    names = [name.decode() for name in IMPORTED.findall(log)]
    assert names, log[-2000:]
    return names


def _redis(imported: list[str]) -> list[str]:
    return [name for name in imported if name == "redis" or name.startswith("redis.")]


def test_the_check_sees_a_redis_import() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import redis.asyncio"],
        capture_output=True,
        env={**os.environ, **IMPORT_TIME},
        timeout=60,
        check=True,
    )
    assert {"redis", "redis.asyncio"} <= set(_redis(_imports(done.stderr)))


async def test_a_hub_alone_serves_without_importing_redis(tmp_path: Path) -> None:
    log_path = tmp_path / "hub.log"
    with served_hub(tmp_path / "data", log_path=log_path, env=IMPORT_TIME) as hub:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{hub.http}/healthz")).status_code == 200
            assert (await http.get(f"{hub.http}/api/devices")).status_code == 200
        async with connect(hub.ws("/ws/dashboard/alone_1")) as dashboard:
            status = await recv_json(dashboard)
        assert status["type"] == "status"
        assert status["online"] is False
        hub.process.send_signal(signal.SIGTERM)
        assert hub.process.wait(15) == 0
    imported = _imports(log_path.read_bytes())
    assert "hub.app" in imported
    assert _redis(imported) == []


def test_the_demo_runs_without_importing_redis(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"EMS_DATA_DIR", "EMS_DATABASE_URL"}}
    output = tmp_path / "demo.out"
    with output.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "ems", "demo", "--port", str(port)],
            cwd=tmp_path,
            env={**env, **IMPORT_TIME, "PYTHONPATH": str(REPO)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/api/devices/ems_demo/readings"
        deadline = time.monotonic() + 60
        while not _has_readings(url):
            assert demo.poll() is None, output.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, output.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C
        assert demo.wait(30) == 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    logs = tmp_path / "ems-data" / "demo" / "logs"
    for name, text in (
        ("demo", output.read_bytes()),  # the agent runs in the demo's own process
        ("hub", (logs / "hub.log").read_bytes()),
        ("sim", (logs / "sim.log").read_bytes()),
    ):
        imported = _imports(text)
        assert _redis(imported) == [], name
        if name == "hub":
            assert "hub.app" in imported
        if name == "demo":
            assert "edge.agent" in imported


def _has_readings(url: str) -> bool:
    try:
        answer = httpx.get(url, timeout=5.0)
    except httpx.TransportError:
        return False
    return answer.status_code == 200 and bool(answer.json()["readings"])
