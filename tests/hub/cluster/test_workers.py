"""``ems hub serve --workers N``: N hub processes on one port (SO_REUSEPORT), one cluster."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hub.cluster.settings import ClusterConfigError
from hub.cluster.workers import (
    RESTART_BACKOFF,
    STABLE_AFTER_S,
    restart_delay,
    worker_argv,
    worker_hub_ids,
)
from telemetry.backoff import Backoff
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


def test_each_worker_is_a_hub_of_its_own_name() -> None:
    assert worker_hub_ids("hub-1", 3) == ["hub-1-w0", "hub-1-w1", "hub-1-w2"]
    assert worker_hub_ids("h" * 61, 10)[-1] == "h" * 61 + "-w9"
    with pytest.raises(ClusterConfigError, match="at most 60 characters with --workers 11"):
        worker_hub_ids("h" * 61, 11)


def test_a_worker_that_stayed_up_a_while_is_restarted_at_once_again() -> None:
    restarts = Backoff(RESTART_BACKOFF, rng=random.Random(7))
    # Deaths in a row: the delay doubles up to the cap (equal jitter: half to all of it).
    quick = [restart_delay(restarts, up_for_s=1.0) for _ in range(8)]
    assert 0.25 <= quick[0] <= 0.5
    assert all(5.0 <= delay <= 10.0 for delay in quick[-3:])
    # Up just under the limit: still a death in a row.
    assert restart_delay(restarts, up_for_s=STABLE_AFTER_S - 1) >= 5.0
    # Up the limit or more (hours, days): the next restart waits the first step again,
    # and the ones after it grow from there.
    assert 0.25 <= restart_delay(restarts, up_for_s=STABLE_AFTER_S) <= 0.5
    assert 0.5 <= restart_delay(restarts, up_for_s=2.0) <= 1.0
    assert 0.25 <= restart_delay(restarts, up_for_s=86_400.0) <= 0.5


def test_a_hub_id_too_long_for_its_workers_is_one_line(tmp_path: Path) -> None:
    env = {
        **hub_env(tmp_path),
        "EMS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
        "EMS_CLUSTER_URL": "redis://127.0.0.1:1",
        "EMS_CLUSTER_HUB_ID": "h" * 63,
    }
    done = subprocess.run(
        [sys.executable, "-m", "ems", "hub", "serve", "--workers", "2", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ems: EMS_CLUSTER_HUB_ID: at most 61 characters with --workers 2 "
        "(each worker adds -w<number>), got 63"
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
    # One hub id for the unit, as deploy/systemd/ems-hub.env suggests: each worker
    # is still a hub of its own name, or dashboards at the others would get nothing.
    env = {**hub_env(tmp_path), "EMS_DATABASE_URL": postgres_url, "EMS_CLUSTER_HUB_ID": "hub-1"}
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
        for number in range(3):
            wait_until(
                lambda n=number: f"cluster: hub hub-1-w{n}, ".encode() in log_path.read_bytes(),
                60,
                f"worker {number}'s hub id",
            )
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


@pytest.mark.slow
async def test_a_worker_that_dies_is_restarted_but_not_once_the_workers_stop(
    tmp_path: Path, postgres_url: str, redis: RedisServer
) -> None:
    log_path = tmp_path / "workers.log"
    env = {**hub_env(tmp_path), "EMS_DATABASE_URL": postgres_url, "EMS_CLUSTER_URL": redis.url}
    command = [sys.executable, "-m", "ems", "hub", "serve", "--workers", "2", "--port", "0"]
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            command, stdout=subprocess.DEVNULL, stderr=log, env=env
        )
    running = re.compile(rb"hub workers \(2\) running on http://127\.0\.0\.1:(\d+)")
    parent = psutil.Process(supervisor.pid)

    def restarting() -> int:
        return log_path.read_bytes().count(b": restarting it in ")

    try:
        wait_until(lambda: running.search(log_path.read_bytes()), 60, "the workers")
        first = parent.children()
        assert len(first) == 2
        first[0].kill()
        wait_until(lambda: restarting() == 1, 30, "the supervisor to see the worker die")
        wait_until(
            lambda: len([c for c in parent.children() if c.pid != first[0].pid]) == 2,
            30,
            "the worker to be restarted",
        )
        # Killed again: SIGTERM to the supervisor while it waits out the backoff.
        parent.children()[0].kill()
        wait_until(lambda: restarting() == 2, 30, "the supervisor to see the worker die")
        left = [c for c in parent.children() if c.is_running()]
        supervisor.terminate()
        started = time.monotonic()
        await asyncio.to_thread(supervisor.wait, 40)
        stopped_in = time.monotonic() - started
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(10)
    assert supervisor.returncode == 0
    # No worker started after the signal (one would get no SIGTERM: killed after 20 s).
    assert stopped_in < 10.0, log_path.read_text()
    assert b"did not stop: killing it" not in log_path.read_bytes()
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in left)
