"""deploy/nginx/ems-hub.conf in front of a real hub: Debian's nginx runs the shipped file
(only its name, ports and certificate paths replaced), with a CA and a server certificate
made here; a real edge agent streams through it over wss://, a dashboard reads through it,
and the hub's per-address limits see each client, not nginx.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from simulation.runner import SimulatedSite
from tests.deploy.nginx_proxy import Proxy, nginx_proxy
from tests.edge.agent_site import site_config
from tests.edge.hubproc import HubProcess
from tests.edge.test_cli import AgentProcess, wait_stored

pytestmark = pytest.mark.slow
# A dashboard over its cap is closed at once; one still open after this stays (a loaded
# machine may take a while to close one).
STAYS_S = 5.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    hub = HubProcess(tmp_path_factory.mktemp("hub"))
    with pytest.MonkeyPatch.context() as patch:
        # One dashboard per client address: the proxy test shows whose address it is.
        patch.setenv("EMS_MAX_DASHBOARDS_PER_ADDRESS", "1")
        hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def proxy(hub: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    with nginx_proxy(tmp_path_factory.mktemp("nginx"), [hub.port]) as running:
        yield running


@pytest.fixture
async def site() -> AsyncIterator[SimulatedSite]:
    async with SimulatedSite(tcp=("127.0.0.1", 0)) as running:
        yield running


async def test_an_edge_agent_streams_through_nginx_over_wss(
    hub: HubProcess, proxy: Proxy, site: SimulatedSite, tmp_path: Path
) -> None:
    device_id = "behind_nginx"
    token = await asyncio.to_thread(hub.token_add, device_id)
    config = site_config(tmp_path, proxy.wss(""), site.tcp_port, device_id)
    # The agent trusts only the CA made here: the certificate nginx serves.
    config = config.replace(
        f'url = "{proxy.wss("")}"\n', f'url = "{proxy.wss("")}"\nca_file = "{proxy.certs.ca}"\n'
    )
    assert f'ca_file = "{proxy.certs.ca}"' in config
    path = tmp_path / "edge.toml"
    path.write_text(config)
    began = datetime.now(UTC)
    agent = AgentProcess(path, token)
    try:
        # A dashboard as a browser on the proxy's origin opens it: nginx passes the
        # upgrade and the Host with its port, which the hub's origin check compares.
        async with connect(
            proxy.wss(f"/ws/dashboard/{device_id}"),
            ssl=proxy.trust(),
            additional_headers={"Origin": proxy.origin},
        ) as dashboard:
            live = await _live_readings(dashboard, device_id, 5)
        seqs = await wait_stored(hub, device_id, began, 10)
        assert await asyncio.to_thread(agent.stop) == 0, agent.text()
    finally:
        if agent.process.poll() is None:
            agent.process.kill()
    assert seqs == list(range(len(seqs)))  # every reading, once, in order
    assert [frame["seq"] for frame in live] == list(
        range(live[0]["seq"], live[0]["seq"] + len(live))
    )
    assert "CERTIFICATE_VERIFY_FAILED" not in agent.text()
    # The readings through the proxy's API, as a browser or a script outside reads them.
    async with httpx.AsyncClient(verify=proxy.trust()) as http:
        answer = await http.get(f"{proxy.origin}/api/devices/{device_id}/readings")
    assert answer.status_code == 200, answer.text
    assert [row["seq"] for row in answer.json()["readings"]][: len(seqs)] == seqs
    # Nothing went wrong between nginx and the hub (info lines about closed sockets are fine).
    for level in ("[error]", "[crit]", "[alert]", "[emerg]"):
        assert level not in proxy.error_log(), proxy.error_log()


async def _live_readings(
    dashboard: ClientConnection, device_id: str, count: int
) -> list[dict[str, object]]:
    frames: list[dict[str, object]] = []
    async with asyncio.timeout(60):
        while len(frames) < count:
            frame = json.loads(await dashboard.recv())
            assert frame["device_id"] == device_id
            if frame["type"] == "reading":
                frames.append(frame)
    return frames


async def test_a_foreign_origin_is_refused_through_nginx(proxy: Proxy) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            proxy.wss("/ws/dashboard/ems_001"),
            ssl=proxy.trust(),
            additional_headers={"Origin": "https://elsewhere.example"},
        ):
            pass
    assert refused.value.response.status_code == 403


async def _dashboard_stays(proxy: Proxy, source: str, claimed: str) -> bool:
    """Whether a dashboard from ``source`` (a loopback address of its own), which claims
    to be ``claimed`` in its own X-Forwarded-For, stays open past the per-address cap."""
    async with connect(
        proxy.wss("/ws/dashboard/ems_001"),
        ssl=proxy.trust(),
        additional_headers={"X-Forwarded-For": claimed},
        local_addr=(source, 0),
    ) as socket:
        try:
            async with asyncio.timeout(STAYS_S):
                await socket.wait_closed()
        except TimeoutError:
            return True
        assert socket.close_code == 1013, socket.close_code
        return False


async def test_the_hub_counts_dashboards_per_client_behind_nginx(proxy: Proxy) -> None:
    """One dashboard per address (the hub's cap here): a second one from the same client
    is closed with 1013 whatever address it claims, one from another client stays."""
    async with connect(
        proxy.wss("/ws/dashboard/ems_001"),
        ssl=proxy.trust(),
        local_addr=("127.0.0.2", 0),
    ):
        assert not await _dashboard_stays(proxy, "127.0.0.2", "198.51.100.9")
        assert await _dashboard_stays(proxy, "127.0.0.3", "127.0.0.2")


def test_plain_http_is_sent_to_https(proxy: Proxy) -> None:
    answer = httpx.get(f"http://127.0.0.1:{proxy.http_port}/", follow_redirects=False)
    assert answer.status_code == 301
    assert answer.headers["location"].startswith("https://127.0.0.1")


VIEWER = "viewer-token-behind-nginx"


@pytest.fixture(scope="module")
def signed_in_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    hub = HubProcess(tmp_path_factory.mktemp("viewer-hub"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMS_VIEWER_TOKEN", VIEWER)
        hub.start()
    try:
        yield hub
    finally:
        hub.stop()


async def test_a_browser_signs_in_through_nginx_with_a_secure_cookie(
    signed_in_hub: HubProcess, tmp_path: Path
) -> None:
    """The built-in dashboard's sign-in through the proxy: nginx says the page was reached
    over https (X-Forwarded-Proto), so the session cookie is Secure; the dashboard socket
    then opens with that cookie alone, from the proxy's origin."""
    with nginx_proxy(tmp_path / "nginx", [signed_in_hub.port]) as proxy:
        async with httpx.AsyncClient(verify=proxy.trust()) as http:
            signed_in = await http.post(
                f"{proxy.origin}/api/session",
                json={"token": VIEWER},
                headers={"Origin": proxy.origin},
            )
        assert signed_in.status_code == 204, signed_in.text
        cookie = signed_in.headers["set-cookie"]
        assert "; Secure" in cookie, cookie
        assert "HttpOnly" in cookie, cookie
        # The same sign-in straight to the hub over plain HTTP: no Secure flag.
        async with httpx.AsyncClient() as http:
            plain = await http.post(
                f"{signed_in_hub.http}/api/session",
                json={"token": VIEWER},
                headers={"Origin": signed_in_hub.http},
            )
        assert plain.status_code == 204, plain.text
        assert "Secure" not in plain.headers["set-cookie"]
        session = cookie.split(";", 1)[0]
        async with connect(
            proxy.wss("/ws/dashboard/ems_001"),
            ssl=proxy.trust(),
            additional_headers={"Origin": proxy.origin, "Cookie": session},
        ) as dashboard:
            status = json.loads(await asyncio.wait_for(dashboard.recv(), 30))
        assert (status["type"], status["device_id"]) == ("status", "ems_001"), status
        # Without the cookie the same socket is refused.
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                proxy.wss("/ws/dashboard/ems_001"),
                ssl=proxy.trust(),
                additional_headers={"Origin": proxy.origin},
            ):
                pass
        assert refused.value.response.status_code in {401, 403}
