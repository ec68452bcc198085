"""Restarting a hub cluster one hub at a time, as docs/operations.md ("Upgrading a hub")
says, behind the shipped nginx config: two ``ems hub serve --cluster`` processes sharing
the run's PostgreSQL database and a private Redis, one upstream line each. A real edge
agent streams through nginx over wss:// the whole time; each hub in turn is stopped
(SIGTERM), started again and waited for (``/readyz``). Every reading the agent took is
stored once, and the agent went on streaming through each restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from simulation.runner import SimulatedSite
from tests.deploy.nginx_proxy import nginx_proxy
from tests.edge.agent_site import site_config
from tests.edge.hubproc import HubProcess
from tests.edge.test_cli import AgentProcess, stored_seqs, wait_stored
from tests.support.redis import RedisServer, redis_server

pytestmark = pytest.mark.slow

DEVICE = "rolling"


@dataclass
class ClusterHub(HubProcess):
    cluster_url: str = ""
    hub_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            "EMS_CLUSTER_URL": self.cluster_url,
            "EMS_CLUSTER_HUB_ID": self.hub_id,
        }

    def ready(self) -> bool:
        """``/readyz`` answers 200 ``{"status": "ready"}``: serving, and in the cluster."""
        try:
            answer = httpx.get(f"{self.http}/readyz", timeout=2)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json() == {"status": "ready"}


def _until(condition: object, within: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


@pytest.fixture
async def site() -> AsyncIterator[SimulatedSite]:
    async with SimulatedSite(tcp=("127.0.0.1", 0)) as running:
        yield running


async def test_a_rolling_restart_behind_nginx_loses_no_reading(
    tmp_path: Path, postgres_url: str, redis: RedisServer, site: SimulatedSite
) -> None:
    hubs = [
        ClusterHub(tmp_path / name, database=postgres_url, cluster_url=redis.url, hub_id=name)
        for name in ("hub-a", "hub-b")
    ]
    for hub in hubs:
        hub.start()
    try:
        with nginx_proxy(tmp_path / "nginx", [hub.port for hub in hubs]) as proxy:
            token = await asyncio.to_thread(hubs[0].token_add, DEVICE)
            url = proxy.wss("")
            config = site_config(tmp_path, url, site.tcp_port, DEVICE)
            config = config.replace(
                f'url = "{url}"\n', f'url = "{url}"\nca_file = "{proxy.certs.ca}"\n'
            )
            path = tmp_path / "edge.toml"
            path.write_text(config)
            began = datetime.now(UTC)
            agent = AgentProcess(path, token)
            try:
                count = len(await wait_stored(hubs[0], DEVICE, began, 10))
                for hub in hubs:
                    # One hub at a time: stop it (its devices are closed with 1001 and
                    # reconnect through nginx to the other), start it, wait until ready.
                    assert await asyncio.to_thread(hub.stop) == 0, hub.log()
                    count = len(
                        await wait_stored(hubs[1 - hubs.index(hub)], DEVICE, began, count + 10)
                    )
                    await asyncio.to_thread(hub.start)
                    await asyncio.to_thread(_until, hub.ready, 60, f"{hub.hub_id} not ready")
                count = len(await wait_stored(hubs[0], DEVICE, began, count + 10))
                assert await asyncio.to_thread(agent.stop) == 0, agent.text()
            finally:
                if agent.process.poll() is None:
                    agent.process.kill()
            # Once the agent stopped, whatever it had sent is stored: every reading it
            # took, once, in order, through two restarts.
            seqs = await stored_seqs(hubs[1], DEVICE, began)
            assert seqs == list(range(len(seqs))), seqs
            assert len(seqs) >= count
            log = agent.text()
            assert "CERTIFICATE_VERIFY_FAILED" not in log
            # Its hub went away under it at least once, and it came back through nginx.
            assert "the hub is going away (1001)" in log, log
            assert log.count("edge.uplink: connected to") >= 2, log
            # A hub that stops may reset its side of the device's socket (the process
            # exits with the agent's last frames unread), which nginx logs as an error
            # while proxying: part of a restart, like a refused connect, not a fault.
            expected = ("connect() failed", "(104: Connection reset by peer) while proxying")
            unexpected = [
                line
                for line in proxy.error_log().splitlines()
                if not any(text in line for text in expected)
            ]
            for level in ("[error]", "[crit]", "[alert]", "[emerg]"):
                assert not [line for line in unexpected if level in line], proxy.error_log()
    finally:
        for hub in hubs:
            hub.stop()
