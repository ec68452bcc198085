"""``--trusted-proxy``: whose ``X-Forwarded-For`` names the client the per-address limits count.

The hub runs as a process (``ems hub serve``); the test is the proxy, on
127.0.0.1, sending the headers nginx would (tests/deploy/test_nginx.py puts a
real nginx in front).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from hub.proxies import DEFAULT_TRUSTED_PROXIES, exempt_with_proxies, parse_trusted_proxies
from tests.hub.served_hub import ServedHub, hub_env, served_hub

VIEWER = "viewer-token-for-proxy-tests"
# A dashboard over its cap is closed at once; one still open after this stays (a loaded
# machine may take a while to close one).
STAYS_S = 5.0


@pytest.mark.parametrize(
    ("text", "proxies"),
    [
        ("127.0.0.1,::1", ("127.0.0.1", "::1")),
        (" 10.0.0.5 , 10.0.0.5,0:0::1 ", ("10.0.0.5", "::1")),
        ("none", ()),
        ("NONE", ()),
    ],
)
def test_trusted_proxies_parse(text: str, proxies: tuple[str, ...]) -> None:
    assert parse_trusted_proxies(text) == proxies


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy.example", "'proxy.example' is not an IP address"),
        ("10.0.0.0/8", "'10.0.0.0/8' is not an IP address"),
        (" , ", "expected comma-separated IP addresses, or 'none'"),
    ],
)
def test_bad_trusted_proxies_say_which_entry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_trusted_proxies(text)


def test_trusted_proxies_are_exempt_from_the_per_address_caps() -> None:
    assert exempt_with_proxies(("127.0.0.1", "::1"), ("10.0.0.5", "127.0.0.1")) == (
        "127.0.0.1",
        "::1",
        "10.0.0.5",
    )
    assert DEFAULT_TRUSTED_PROXIES == ("127.0.0.1", "::1")


async def _wrong_guesses(hub: ServedHub, client: str, count: int) -> list[int]:
    """``count`` wrong viewer tokens from ``client`` as a proxy names it; the statuses."""
    statuses = []
    async with httpx.AsyncClient() as http:
        for _ in range(count):
            answer = await http.get(
                f"{hub.http}/api/devices",
                headers={"Authorization": "Bearer wrong", "X-Forwarded-For": client},
            )
            statuses.append(answer.status_code)
    return statuses


async def test_a_trusted_proxy_names_the_client_of_the_guess_budget(tmp_path: Path) -> None:
    with served_hub(
        tmp_path / "data",
        "--viewer-guesses",
        "2",
        log_path=tmp_path / "hub.log",
        env={"EMS_VIEWER_TOKEN": VIEWER},
    ) as hub:
        # Loopback is trusted by default: each forwarded client has its own budget.
        assert await _wrong_guesses(hub, "203.0.113.7", 3) == [401, 401, 429]
        assert await _wrong_guesses(hub, "203.0.113.8", 1) == [401]
        # A header the proxy appended to (nginx's $proxy_add_x_forwarded_for) names the
        # client it saw last: what the client claimed before it counts for nothing.
        assert await _wrong_guesses(hub, "203.0.113.8, 203.0.113.7", 1) == [429]
        assert "client addresses from X-Forwarded-For of: 127.0.0.1, ::1" in hub.log()


async def test_trusting_no_proxy_ignores_the_header(tmp_path: Path) -> None:
    with served_hub(
        tmp_path / "data",
        "--viewer-guesses",
        "2",
        "--trusted-proxy",
        "none",
        log_path=tmp_path / "hub.log",
        env={"EMS_VIEWER_TOKEN": VIEWER},
    ) as hub:
        # Every "client" is the peer, 127.0.0.1: one budget for all.
        assert await _wrong_guesses(hub, "203.0.113.7", 2) == [401, 401]
        assert await _wrong_guesses(hub, "203.0.113.8", 1) == [429]
        assert "no one (--trusted-proxy none)" in hub.log()


async def test_an_untrusted_peer_cannot_claim_an_address(tmp_path: Path) -> None:
    """Only another proxy is trusted ($EMS_TRUSTED_PROXIES): the loopback peer's header
    is ignored, so changing it does not buy a fresh budget."""
    with served_hub(
        tmp_path / "data",
        "--viewer-guesses",
        "1",
        log_path=tmp_path / "hub.log",
        env={"EMS_VIEWER_TOKEN": VIEWER, "EMS_TRUSTED_PROXIES": "192.0.2.10"},
    ) as hub:
        assert await _wrong_guesses(hub, "203.0.113.7", 1) == [401]
        assert await _wrong_guesses(hub, "203.0.113.8", 1) == [429]


async def _dashboard_stays(hub: ServedHub, client: str) -> bool:
    """Whether a dashboard socket from ``client`` (as the proxy names it) stays open."""
    async with connect(
        hub.ws("/ws/dashboard/ems_001"), additional_headers={"X-Forwarded-For": client}
    ) as socket:
        try:
            async with asyncio.timeout(STAYS_S):
                await socket.wait_closed()
        except TimeoutError:
            return True
        assert socket.close_code == 1013, socket.close_code
        return False


async def test_dashboard_caps_count_forwarded_clients(tmp_path: Path) -> None:
    with served_hub(
        tmp_path / "data",
        "--max-dashboards-per-address",
        "1",
        log_path=tmp_path / "hub.log",
    ) as hub:
        async with connect(
            hub.ws("/ws/dashboard/ems_001"), additional_headers={"X-Forwarded-For": "198.51.100.1"}
        ):
            assert not await _dashboard_stays(hub, "198.51.100.1")
            assert await _dashboard_stays(hub, "198.51.100.2")


def test_a_bad_trusted_proxy_is_a_usage_error(tmp_path: Path) -> None:
    for args, env, where in [
        (["--trusted-proxy", "proxy.example"], {}, "--trusted-proxy"),
        ([], {"EMS_TRUSTED_PROXIES": "10.0.0.0/8"}, "$EMS_TRUSTED_PROXIES"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "ems", "hub", "serve", "--port", "0", *args],
            capture_output=True,
            text=True,
            env={**hub_env(tmp_path / "data"), **env},
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"ems: {where}: "), last
        assert "is not an IP address" in last
