"""Viewer access through real sockets: Origin, the viewer token, the session cookie, headers.

A real hub (uvicorn on an ephemeral port) with real WebSocket and HTTP clients;
a browser's part is played by the headers a browser sends (``Origin``,
``Cookie``); tests/hub/test_dashboard_browser.py runs the real browser.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from hub.limits import ConnectionLimits
from hub.viewer_access import SESSION_COOKIE, SESSION_LIFETIME_S, issue_session
from hub.web_security import CONTENT_SECURITY_POLICY
from tests.hub.served_hub import served_hub
from tests.support.hub import RunningHub, parse_metrics, recv_json, running_hub
from tests.tls_ca import make_ca

REPO = Path(__file__).resolve().parents[2]

VIEWER_TOKEN = "look-but-do-not-touch"
FRIEND = "https://friend.example"


@pytest.fixture
async def open_hub(tmp_path: Path, no_errors_logged: object) -> AsyncIterator[RunningHub]:
    async with running_hub(None, tmp_path, allowed_origins=(FRIEND,)) as hub:
        yield hub


@pytest.fixture
async def guarded_hub(tmp_path: Path, no_errors_logged: object) -> AsyncIterator[RunningHub]:
    async with running_hub(None, tmp_path, viewer_token=VIEWER_TOKEN) as hub:
        yield hub


async def handshake_status(url: str, headers: dict[str, str] | None = None) -> int:
    """101 when the dashboard door accepts (and sends its first frame), else the HTTP status."""
    try:
        async with connect(url, additional_headers=headers) as client:
            assert (await recv_json(client))["type"] == "status"
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_the_dashboard_door_is_same_origin_by_default(open_hub: RunningHub) -> None:
    url = open_hub.ws("/ws/dashboard/ems_001")
    own = f"http://127.0.0.1:{open_hub.port}"
    assert await handshake_status(url) == 101  # no Origin: not a browser
    assert await handshake_status(url, {"Origin": own}) == 101
    assert await handshake_status(url, {"Origin": FRIEND}) == 101  # --allow-origin
    assert await handshake_status(url, {"Origin": "https://evil.example"}) == 403
    assert await handshake_status(url, {"Origin": f"http://127.0.0.1:{open_hub.port + 1}"}) == 403
    assert await handshake_status(url, {"Origin": "null"}) == 403
    metrics = await open_hub.metrics()
    assert metrics['ems_refused_total{door="dashboard",reason="bad_origin"}'] == 3


async def test_the_api_is_same_origin_by_default(open_hub: RunningHub) -> None:
    own = f"http://127.0.0.1:{open_hub.port}"
    async with httpx.AsyncClient(base_url=open_hub.http) as http:
        assert (await http.get("/api/devices")).status_code == 200
        assert (await http.get("/api/devices", headers={"Origin": own})).status_code == 200
        foreign = await http.get("/api/devices", headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert "access-control-allow-origin" not in foreign.headers
        friend = await http.get("/api/devices", headers={"Origin": FRIEND})
        assert friend.status_code == 200
        assert friend.headers["access-control-allow-origin"] == FRIEND
        preflight = await http.options(
            "/api/devices",
            headers={
                "Origin": FRIEND,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == FRIEND
        # /healthz is for orchestration, not browsers: no Origin rule.
        assert (await http.get("/healthz", headers={"Origin": "https://evil.example"})).is_success


async def test_every_http_answer_carries_the_security_headers(guarded_hub: RunningHub) -> None:
    async with httpx.AsyncClient(base_url=guarded_hub.http) as http:
        for path, status in [
            ("/", 200),
            ("/devices/ems_001", 200),  # signed out: the page asks for the token
            ("/devices/bad%20id", 404),
            ("/static/js/common.js", 200),
            ("/static/nope.js", 404),
            ("/healthz", 200),
            ("/metrics", 200),
            ("/api/devices", 401),
            ("/api/openapi.json", 401),
        ]:
            answer = await http.get(path)
            assert answer.status_code == status, path
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
            assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
            assert answer.headers["x-content-type-options"] == "nosniff", path
            assert answer.headers["referrer-policy"] == "no-referrer", path
            assert answer.headers["x-frame-options"] == "DENY", path


async def test_the_openapi_document_needs_the_viewer_token(guarded_hub: RunningHub) -> None:
    async with httpx.AsyncClient(base_url=guarded_hub.http) as http:
        refused = await http.get("/api/openapi.json")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        for docs in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(docs)).status_code == 404
        document = await http.get(
            "/api/openapi.json", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}
        )
        assert document.status_code == 200
        assert "/api/devices" in document.json()["paths"]
        assert "/api/session" in document.json()["paths"]
        # The version is the one of pyproject.toml, not FastAPI's default.
        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        assert document.json()["info"]["version"] == project["version"]


async def test_the_session_cookie_opens_the_api_and_the_door(guarded_hub: RunningHub) -> None:
    url = guarded_hub.ws("/ws/dashboard/ems_001")
    async with httpx.AsyncClient(base_url=guarded_hub.http) as http:
        assert (await http.get("/api/session")).status_code == 401
        wrong = await http.post("/api/session", json={"token": "guess"})
        assert wrong.status_code == 401
        assert SESSION_COOKIE not in wrong.cookies
        assert (await http.post("/api/session", json={"token": 123})).status_code == 422
        login = await http.post("/api/session", json={"token": VIEWER_TOKEN})
        assert login.status_code == 204
        cookie_header = login.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/", f"Max-Age={SESSION_LIFETIME_S}"):
            assert attribute.lower() in cookie_header.lower(), cookie_header
        session = login.cookies[SESSION_COOKIE]
        assert VIEWER_TOKEN not in session
        assert (await http.get("/api/session")).json() == {"viewer_token_required": True}
        assert (await http.get("/api/devices")).status_code == 200
        # Signed in, an unknown device is a 404 page; signed out it was the sign-in page.
        assert (await http.get("/devices/ems_001")).status_code == 404
        assert await handshake_status(url, {"Cookie": f"{SESSION_COOKIE}={session}"}) == 101
        # Signing out forgets the cookie.
        assert (await http.delete("/api/session")).status_code == 204
        assert (await http.get("/api/devices")).status_code == 401
    # A bearer header works for the login too (scripts).
    async with httpx.AsyncClient(base_url=guarded_hub.http) as http:
        login = await http.post("/api/session", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
        assert login.status_code == 204
    # Forged, tampered or expired cookies are refused.
    expired = issue_session(VIEWER_TOKEN, time.time() - SESSION_LIFETIME_S - 1)
    other_key = issue_session("another-viewer-token", time.time())
    tampered = session[:-2] + ("AA" if not session.endswith("AA") else "BB")
    for forged in (expired, other_key, tampered, "v1.99999999999.x", "garbage"):
        assert await handshake_status(url, {"Cookie": f"{SESSION_COOKIE}={forged}"}) == 403
    # The header and ?token= keep working, as before.
    assert await handshake_status(url, {"Authorization": f"Bearer {VIEWER_TOKEN}"}) == 101
    assert await handshake_status(f"{url}?token={VIEWER_TOKEN}") == 101
    assert await handshake_status(url) == 403
    # A foreign page cannot log in on the visitor's behalf either.
    async with httpx.AsyncClient(base_url=guarded_hub.http) as http:
        foreign = await http.post(
            "/api/session",
            json={"token": VIEWER_TOKEN},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403


async def test_a_hub_without_viewer_token_needs_no_session(open_hub: RunningHub) -> None:
    async with httpx.AsyncClient(base_url=open_hub.http) as http:
        login = await http.post("/api/session", json={"token": "anything"})
        assert login.status_code == 204
        assert SESSION_COOKIE not in login.cookies
        assert (await http.get("/api/session")).json() == {"viewer_token_required": False}
        metrics = parse_metrics((await http.get("/metrics")).text)
    assert metrics.get('ems_refused_total{door="dashboard",reason="bad_token"}', 0) == 0


async def test_over_tls_the_session_cookie_is_secure(tmp_path: Path) -> None:
    certs = make_ca(tmp_path)
    trust = ssl.create_default_context(cafile=certs.ca)
    with served_hub(
        tmp_path / "data",
        "--tls-cert",
        str(certs.cert),
        "--tls-key",
        str(certs.key),
        log_path=tmp_path / "hub.log",
        env={"EMS_VIEWER_TOKEN": VIEWER_TOKEN},
    ) as hub:
        async with httpx.AsyncClient(base_url=hub.http, verify=trust) as http:
            login = await http.post("/api/session", json={"token": VIEWER_TOKEN})
            assert login.status_code == 204
            assert "secure" in login.headers["set-cookie"].lower()
            session = login.cookies[SESSION_COOKIE]
        own = hub.http  # https://127.0.0.1:PORT
        status = await handshake_status_tls(
            hub.ws("/ws/dashboard/ems_001"),
            {"Cookie": f"{SESSION_COOKIE}={session}", "Origin": own},
            trust,
        )
        assert status == 101
    assert VIEWER_TOKEN not in hub.log()


async def handshake_status_tls(url: str, headers: dict[str, str], trust: ssl.SSLContext) -> int:
    try:
        async with connect(url, additional_headers=headers, ssl=trust) as client:
            assert (await recv_json(client))["type"] == "status"
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_wrong_viewer_tokens_are_throttled_per_address(tmp_path: Path) -> None:
    async with running_hub(
        None, tmp_path, viewer_token=VIEWER_TOKEN, limits=ConnectionLimits(viewer_guesses=4)
    ) as hub:
        url = hub.ws("/ws/dashboard/ems_001")
        right = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
        async with httpx.AsyncClient(base_url=hub.http) as http:
            earned = await http.post("/api/session", json={"token": VIEWER_TOKEN})
            session = earned.cookies[SESSION_COOKIE]
            http.cookies.clear()
            # Successes spend nothing; each kind of wrong token does (loopback included).
            for _ in range(5):
                assert (await http.get("/api/devices", headers=right)).status_code == 200
            assert (await http.post("/api/session", json={"token": "guess1"})).status_code == 401
            wrong = {"Authorization": "Bearer guess2"}
            assert (await http.get("/api/devices", headers=wrong)).status_code == 401
            assert await handshake_status(f"{url}?token=guess3") == 403
            assert (await http.post("/api/session", json={"token": "guess4"})).status_code == 401
            # Spent: even the right token is not compared now.
            refused = await http.post("/api/session", json={"token": VIEWER_TOKEN})
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert SESSION_COOKIE not in refused.cookies
            api = await http.get("/api/devices", headers=right)
            assert api.status_code == 429
            assert "retry-after" in api.headers
            assert await handshake_status(url, right) == 403
            # A session earned before still reads.
            cookie = {"Cookie": f"{SESSION_COOKIE}={session}"}
            assert (await http.get("/api/devices", headers=cookie)).status_code == 200
            assert await handshake_status(url, cookie) == 101
            metrics = await hub.metrics()
            assert metrics["ems_viewer_tokens_wrong_total"] == 4
            assert metrics["ems_viewer_tokens_throttled_total"] == 3
            assert metrics["ems_viewer_guess_addresses"] == 1
            assert metrics['ems_refused_total{door="dashboard",reason="throttled"}'] == 1
            # The minute passes (shortened here): the address may try again.
            hub.hub.viewer_policy.guesses.window_s = 0.5
            await asyncio.sleep(0.6)
            assert (await http.get("/api/devices", headers=right)).status_code == 200
            assert (await http.post("/api/session", json={"token": "guess5"})).status_code == 401
            assert (await hub.metrics())["ems_viewer_guess_addresses"] == 1
