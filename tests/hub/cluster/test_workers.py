"""``ems hub serve --workers N``: N hub processes on one port (SO_REUSEPORT), one cluster."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hub.cluster.workers import worker_argv
from tests.hub.cluster.processes import add_tokens
from tests.hub.served_hub import hub_env
from tests.support.hub import device_id, reading, recv_ack_seqs, recv_json
from tests.support.polling import wait_until
from tests.support.redis import RedisServer

RUNNING = re.compile(rb"hub workers \(3\) running on http://127\.0\.0\.1:(\d+)")


def test_worker_argv_drops_workers_and_binds_the_shared_port() -> None:
    argv = ["hub", "serve", "--workers", "3", "--port", "0", "--workers=2", "--cluster", "u"]
    assert worker_argv(argv, 8123) == [
        "hub",
        "serve",
        "--port",
        "0",
        "--cluster",
        "u",
        "--port",
        "8123",
        "--reuse-port",
    ]


def test_workers_need_a_cluster(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ems", "hub", "serve", "--workers", "2", "--port", "0"],
        capture_output=True,
        text=True,
        env=hub_env(tmp_path),
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("ems: --workers needs --cluster")


def test_sqlite_refuses_cluster_mode_with_one_line(tmp_path: Path, redis: RedisServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ems", "hub", "serve", "--cluster", redis.url, "--port", "0"],
        capture_output=True,
        text=True,
        env=hub_env(tmp_path),
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ems: --cluster needs PostgreSQL storage (--database or EMS_DATABASE_URL): "
        "SQLite is one hub's file"
    ]


@pytest.mark.slow
async def test_three_workers_share_one_port_and_one_switchboard(
    tmp_path: Path, postgres_url: str, redis: RedisServer
) -> None:
    device = device_id()
    token = (await add_tokens(postgres_url, tmp_path / "tokens", [device]))[device]
    log_path = tmp_path / "workers.log"
    env = {**hub_env(tmp_path), "EMS_DATABASE_URL": postgres_url}
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [
                sys.executable,
                "-m",
                "ems",
                "hub",
                "serve",
                "--workers",
                "3",
                "--port",
                "0",
                "--cluster",
                redis.url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    try:
        wait_until(lambda: RUNNING.search(log_path.read_bytes()), 60, "the workers")
        match = RUNNING.search(log_path.read_bytes())
        assert match is not None
        port = int(match[1])
        workers = psutil.Process(supervisor.pid).children()
        assert len(workers) == 3
        from websockets.asyncio.client import connect

        base = f"ws://127.0.0.1:{port}"
        # Many dashboards: SO_REUSEPORT spreads them over the workers by client port.
        dashboards = [await connect(f"{base}/ws/dashboard/{device}") for _ in range(12)]
        for dashboard in dashboards:
            assert (await recv_json(dashboard))["type"] == "status"
        agent = await connect(
            f"{base}/ws/device/{device}", additional_headers={"Authorization": f"Bearer {token}"}
        )
        for dashboard in dashboards:
            assert (await recv_json(dashboard))["online"] is True
        for seq in range(1, 21):
            await agent.send(json.dumps(reading(seq)))
        for dashboard in dashboards:
            seqs = [(await recv_json(dashboard))["seq"] for _ in range(20)]
            assert seqs == list(range(1, 21))
        assert await recv_ack_seqs(agent, set(range(1, 21))) >= set(range(1, 21))
        # Connections landed on more than one worker.
        busy = [w for w in workers if w.net_connections(kind="tcp")]
        assert len(busy) >= 2
        await agent.close()
        for dashboard in dashboards:
            await dashboard.close()
    finally:
        supervisor.terminate()
        started = time.monotonic()
        await asyncio.to_thread(supervisor.wait, 40)
    assert supervisor.returncode == 0
    assert time.monotonic() - started < 30
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
