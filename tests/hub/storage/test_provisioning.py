"""Finding a TimescaleDB for the suite (tests/support/timescaledb.py, scripts/timescaledb.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncpg
import pytest

from hub.storage.migrate import TIMESCALE_PRELOADED_SQL
from tests.support.timescaledb import (
    TOOL_VARIABLE,
    URL_VARIABLE,
    TimescaleUnavailable,
    find_tool,
    timescaledb_server,
)

ROOT = Path(__file__).resolve().parents[3]


def _tool_above(folder: Path) -> Path:
    tool = folder / "shared" / "tools" / "timescaledb"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/usr/bin/env bash\n")
    return tool


def test_the_tool_is_found_in_a_shared_folder_above_the_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "clones" / "ems"
    checkout.mkdir(parents=True)
    assert find_tool(checkout, {}) is None
    far = _tool_above(tmp_path)
    assert find_tool(checkout, {}) == far
    near = _tool_above(tmp_path / "clones")  # the nearest folder wins
    assert find_tool(checkout, {}) == near


def test_the_variable_names_the_tool_and_must_name_a_file(tmp_path: Path) -> None:
    checkout = tmp_path / "ems"
    checkout.mkdir()
    _tool_above(tmp_path)
    own = tmp_path / "elsewhere" / "tool"
    own.parent.mkdir()
    own.write_text("")
    assert find_tool(checkout, {TOOL_VARIABLE: str(own)}) == own
    with pytest.raises(TimescaleUnavailable, match=f"{TOOL_VARIABLE}=.*no such file"):
        find_tool(checkout, {TOOL_VARIABLE: str(tmp_path / "missing")})


def test_with_neither_url_nor_tool_the_error_says_what_to_set(tmp_path: Path) -> None:
    with (
        pytest.raises(TimescaleUnavailable, match=f"set {URL_VARIABLE} .* or {TOOL_VARIABLE}"),
        timescaledb_server(tmp_path, {}),
    ):
        pass


def test_a_url_in_the_environment_is_used_as_it_is(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/postgres"
    with timescaledb_server(tmp_path, {URL_VARIABLE: url}) as found:
        assert found == url


@pytest.mark.timescaledb
async def test_the_run_has_a_server_that_preloads_timescaledb(timescaledb_url: str) -> None:
    conn = await asyncpg.connect(timescaledb_url)
    try:
        assert await conn.fetchval(TIMESCALE_PRELOADED_SQL) is True
        await conn.execute("CREATE EXTENSION timescaledb")
        assert await conn.fetchval(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        )
    finally:
        await conn.close()


def _script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "timescaledb.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def test_the_script_fails_without_a_timescaledb() -> None:
    done = _script({TOOL_VARIABLE: "/nonexistent/timescaledb"})
    assert done.returncode == 1
    assert URL_VARIABLE in done.stderr
    assert "/nonexistent/timescaledb" in done.stderr


def test_the_script_has_nothing_to_do_for_a_server_named_by_url() -> None:
    done = _script({URL_VARIABLE: "postgresql://postgres@127.0.0.1:1/postgres"})
    assert (done.returncode, done.stdout) == (0, "")
