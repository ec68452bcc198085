"""The dashboard's static files (hub/dashboard.py): revalidated, never stale, never outside."""

from __future__ import annotations

import httpx

from hub.dashboard import STATIC_DIR
from hub.web_security import SECURITY_HEADERS
from tests.support.hub import RunningHub


def assert_security_headers(answer: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS:
        assert answer.headers[name.decode()] == value.decode(), name


async def test_a_file_is_served_whole_with_its_validators(sqlite_hub: RunningHub) -> None:
    async with httpx.AsyncClient(base_url=sqlite_hub.http) as http:
        answer = await http.get("/static/js/common.js")
    assert answer.status_code == 200
    assert answer.content == (STATIC_DIR / "js" / "common.js").read_bytes()
    assert answer.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["etag"]
    assert answer.headers["last-modified"]
    assert_security_headers(answer)


async def test_a_browser_revalidating_gets_304_with_the_same_headers(
    sqlite_hub: RunningHub,
) -> None:
    async with httpx.AsyncClient(base_url=sqlite_hub.http) as http:
        first = await http.get("/static/dashboard.css")
        again = await http.get(
            "/static/dashboard.css", headers={"If-None-Match": first.headers["etag"]}
        )
        since = await http.get(
            "/static/dashboard.css",
            headers={"If-Modified-Since": first.headers["last-modified"]},
        )
        other = await http.get("/static/dashboard.css", headers={"If-None-Match": '"other"'})
    for answer in (again, since):
        assert answer.status_code == 304
        assert answer.content == b""
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["etag"] == first.headers["etag"]
        assert_security_headers(answer)
    assert other.status_code == 200
    assert other.content == first.content


async def test_nothing_outside_the_static_directory(sqlite_hub: RunningHub) -> None:
    async with httpx.AsyncClient(base_url=sqlite_hub.http) as http:
        for path in (
            "/static/../dashboard.py",
            "/static/%2e%2e/dashboard.py",
            "/static/js/../../runtime.py",
            "/static/%2e%2e/%2e%2e/pyproject.toml",
            "/static/",
            "/static/js",
            "/static/no-such-file.js",
            "/static/" + "x" * 300,
        ):
            answer = await http.get(path)
            assert answer.status_code == 404, path
            assert_security_headers(answer)
        refused = await http.post("/static/js/common.js")
    assert refused.status_code == 405
