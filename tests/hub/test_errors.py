"""Client mistakes are 4xx with one line, storage down is a bare 503, a bug a bare 500.

Through a real server on both storages: the answers must never carry internal
text (an SQL error, a host name, a traceback) and nothing may be logged at
ERROR for a client's mistake (the ``no_errors_logged`` fixture of the hubs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from hub.errors import CatchAll
from hub.server import HubServer, uvicorn_config
from tests.support.hub import RunningHub, running_hub
from tests.support.polling import until
from tests.tcp_proxy import TcpProxy

INTERNAL = ("Traceback", "asyncpg", "sqlite", "Error", "postgresql://", "SELECT")


async def get(hub: RunningHub, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=hub.http, timeout=20) as http:
        return await http.get(path, **kwargs)  # type: ignore[arg-type]


def assert_one_line_without_internals(answer: httpx.Response) -> None:
    detail = answer.json()["detail"]
    assert isinstance(detail, str)
    assert "\n" not in detail, detail
    assert not any(word in detail for word in INTERNAL), detail


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"start": "0001-01-01T00:00:00+05:00"}, "start"),  # year 0 in UTC
        ({"end": "9999-12-31T23:59:59-14:00"}, "end"),  # year 10000 in UTC
        ({"start": "0001-01-01T00:00:00+05:00", "bucket": "1d"}, "start"),
        ({"limit": "9" * 5000}, "limit"),
        ({"start": "x" * 5000}, "start"),
    ],
)
async def test_times_outside_utc_years_1_to_9999_are_422(
    any_hub: RunningHub, query: dict[str, str], parameter: str
) -> None:
    answer = await get(any_hub, "/api/devices/ems_001/readings", params=query)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"{parameter}: ")
    assert len(answer.json()["detail"]) < 200  # the client's text is not echoed in full
    assert_one_line_without_internals(answer)


@pytest.mark.parametrize(
    "query",
    [
        {"end": "0001-01-01T00:30:00Z"},  # the default start would be before year 1
        {"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"},
        {"start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z", "bucket": "1h"},
        {"start": "9999-12-31T00:00:00Z", "end": "9999-12-31T23:59:59.999999Z", "bucket": "1d"},
    ],
)
async def test_the_ends_of_time_are_answered_not_failed(
    any_hub: RunningHub, query: dict[str, str]
) -> None:
    # A device id no other test stores readings for: the session's PostgreSQL
    # database is shared by every test file.
    answer = await get(any_hub, "/api/devices/ends_of_time_probe/readings", params=query)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body.get("readings", body.get("buckets")) == []


@pytest.mark.parametrize("path", ["/static/%00", "/static/a%00b.js", "/devices/%00"])
async def test_a_nul_in_a_path_is_404(sqlite_hub: RunningHub, path: str) -> None:
    answer = await get(sqlite_hub, path)
    assert answer.status_code == 404


async def test_storage_down_is_a_bare_503_and_its_reason_is_logged(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    target = urlsplit(postgres_url)
    async with (
        TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
        running_hub(proxy.rewrite_url(postgres_url), tmp_path) as hub,
    ):
        await proxy.cut()
        for path in ["/api/devices", "/api/devices/ems_001/readings"]:
            answer = await get(hub, path)
            assert (answer.status_code, answer.json()) == (503, {"detail": "storage unavailable"})
        ready = await get(hub, "/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "storage unreachable"
        await proxy.restore()
    logged = [r.getMessage() for r in caplog.records if "storage unavailable:" in r.getMessage()]
    assert logged, "the reason of a 503 goes to the log"


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    server = HubServer(uvicorn_config(app, "127.0.0.1", 0), app, handle_signals=False)
    task = asyncio.create_task(server.serve(), name="test.app")
    try:
        await until(lambda: server.started or task.done())
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_an_unexpected_exception_is_a_generic_500_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The catch-all of hub/errors.py, on a route that fails the way a bug would."""
    app = FastAPI()
    app.add_middleware(CatchAll)

    @app.get("/boom/{name}")
    async def boom(name: str) -> None:
        raise KeyError(f"secret-{name} at postgresql://user:pw@db/ems")

    caplog.set_level(logging.INFO)
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=20) as http:
        answer = await http.get("/boom/x")
        still = await http.get("/boom/y")
    assert (answer.status_code, answer.json()) == (500, {"detail": "internal error"})
    assert still.status_code == 500  # the server goes on
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    for record in errors:
        assert record.getMessage().startswith("internal error in GET /boom/{name}: KeyError ")
        assert "\n" not in record.getMessage()
        assert not record.exc_info
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "Traceback" not in logged
    assert ":pw@" not in logged  # the log's redaction applies to this line too
