"""The ``ems`` command as a process: one-line errors, ``--version``, where tokens are stored."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def ems(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **env}
    for name in ("EMS_DATABASE_URL", "EMS_DATA_DIR", "EMS_VIEWER_TOKEN"):
        if name not in env:
            environ.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "ems", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's only line on stderr (and nothing on stdout)."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == ""
    return lines[0]


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:{password}@{host}"))


def test_version_is_the_one_of_pyproject(tmp_path: Path) -> None:
    done = ems("--version", cwd=tmp_path)
    assert done.returncode == 0
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert done.stdout.strip() == f"ems {project['version']}"


def test_token_list_says_when_there_are_none(tmp_path: Path) -> None:
    done = ems("hub", "token", "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no device tokens (create one with: ems hub token add DEVICE_ID)"


def test_token_add_says_which_storage_it_used(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    added = ems("hub", "token", "add", "ems_001", cwd=elsewhere)
    assert added.returncode == 0, added.stderr
    database = elsewhere / "ems-data" / "hub.db"
    assert added.stderr.strip() == f"ems: storage: SQLite file {database}"
    assert database.is_file()
    # With EMS_DATA_DIR, that folder wherever the command runs.
    data = tmp_path / "data"
    listed = ems("hub", "token", "list", cwd=elsewhere, EMS_DATA_DIR=str(data))
    assert listed.stderr.strip() == f"ems: storage: SQLite file {data / 'hub.db'}"


def test_database_works_before_and_after_the_subcommand(tmp_path: Path, postgres_url: str) -> None:
    url = with_password(postgres_url, "s3cret-pw")  # trust auth: the password is not checked
    added = ems("hub", "token", "add", "ems_042", "--database", url, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "s3cret-pw" not in added.stderr + added.stdout
    assert added.stderr.startswith("ems: storage: PostgreSQL at postgresql://")
    assert urlsplit(postgres_url).path in added.stderr
    for args in (
        ("hub", "--database", url, "token", "list"),
        ("hub", "token", "--database", url, "list"),
        ("hub", "token", "list", "--database", url),
    ):
        listed = ems(*args, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "ems_042\t" in listed.stdout, args
    # The environment variable, and the flag winning over it.
    assert "ems_042\t" in ems("hub", "token", "list", cwd=tmp_path, EMS_DATABASE_URL=url).stdout
    sqlite = ems("hub", "token", "list", "--database", "", cwd=tmp_path, EMS_DATABASE_URL=url)
    assert "ems_042" in sqlite.stdout  # an empty flag is unset: the variable holds
    assert not (tmp_path / "ems-data").exists()


def test_serve_with_a_bad_url_is_one_line(tmp_path: Path) -> None:
    done = ems("hub", "serve", "--port", "0", "--database", "mysql://u@h/db", cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done).startswith(
        "ems: cannot open storage (database at mysql://u@h/db): unsupported database URL scheme"
    )


def test_serve_with_postgres_not_listening_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://ems:hunter2@127.0.0.1:{free_port()}/ems"
    done = ems("hub", "serve", "--port", "0", "--database", url, cwd=tmp_path)
    assert done.returncode == 1
    line = one_line(done)
    assert line.startswith(
        f"ems: cannot open storage (PostgreSQL at {url.replace(':hunter2', '')})"
    )
    assert "hunter2" not in line
    assert "refused" in line.lower()


def test_serve_with_a_missing_database_is_one_line(tmp_path: Path, postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/ems_no_such_database"
    done = ems("hub", "serve", "--port", "0", cwd=tmp_path, EMS_DATABASE_URL=url)
    assert done.returncode == 1
    assert 'database "ems_no_such_database" does not exist' in one_line(done)


def test_token_commands_with_postgres_not_listening(tmp_path: Path) -> None:
    url = f"postgresql://ems@127.0.0.1:{free_port()}/ems"
    for args, doing in (
        (("add", "ems_001"), "cannot store the token"),
        (("list",), "cannot read tokens"),
        (("revoke", "ems_001"), "cannot revoke"),
    ):
        done = ems("hub", "token", *args, "--database", url, cwd=tmp_path)
        assert done.returncode == 1
        storage, error = done.stderr.strip().splitlines()
        assert storage == f"ems: storage: PostgreSQL at {url}"
        assert error.startswith(f"ems: {doing}: ")
        assert done.stdout == ""


def test_a_bad_device_id_is_a_usage_error(tmp_path: Path) -> None:
    done = ems("hub", "token", "add", "not valid!", cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done) == "ems: invalid device id 'not valid!': 1 to 64 of A-Z a-z 0-9 _ - ."
    assert not (tmp_path / "ems-data").exists()


def test_serve_on_a_port_in_use_ends_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = ems("hub", "serve", "--port", str(port), cwd=tmp_path)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert "address already in use" in errors[0]
    assert done.stderr.strip().splitlines()[-1] == "ems: the hub did not start (see the log above)"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["run", "status", "probe inverter", "scan sim"])
def test_edge_commands_with_a_missing_config_are_one_line(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "edge.toml"
    done = ems(
        "edge", *command.split()[:1], "--config", str(missing), *command.split()[1:], cwd=tmp_path
    )
    assert done.returncode == 2
    assert one_line(done).startswith(f"config error: cannot read '{missing}'")


def test_sim_with_a_bad_endpoint_is_one_line(tmp_path: Path) -> None:
    done = ems("sim", "--tcp", "nowhere", cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done) == "ems sim: --tcp: expected HOST:PORT, not 'nowhere'"


def test_a_missing_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    done = ems("hub", "token", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "ems hub token: error: the following arguments are required: COMMAND"
    )


def test_every_hub_flag_and_variable_is_in_docs_configuration() -> None:
    import argparse

    from ems.cli import build_parser

    docs = (REPO / "docs" / "configuration.md").read_text()
    parser = build_parser()
    hub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "hub"
    ]
    serve = next(a for a in hub._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "serve"
    ]
    flags = [flag for action in serve._actions for flag in action.option_strings]
    missing = [f for f in flags if f.startswith("--") and f != "--help" and f"`{f}" not in docs]
    assert not missing, f"not in docs/configuration.md: {missing}"
    variables = set(re.findall(r"\$(EMS_[A-Z_]+)", serve.format_help()))
    assert variables
    assert not [v for v in variables if f"`{v}`" not in docs]


def test_the_examples_of_docs_configuration_are_valid(tmp_path: Path) -> None:
    from drivers.profiles.generic import load_generic
    from edge.config import load_config

    docs = (REPO / "docs" / "configuration.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", docs, re.S)
    site = blocks[0]
    # The generic map's worked example: the map file, then the device using it.
    register_map = next(b for b in blocks if b.startswith('name = "acme-pm3"'))
    device = next(b for b in blocks if 'profile_file = "acme-pm3.toml"' in b)
    (tmp_path / "site.toml").write_text(site)
    config = load_config(tmp_path / "site.toml")
    assert [d.name for d in config.devices] == ["grid-meter", "inverter", "charger"]
    (tmp_path / "acme-pm3.toml").write_text(register_map)
    plan = load_generic(tmp_path / "acme-pm3.toml").plan
    assert [(r.address, r.count) for r in plan] == [(0, 14), (72, 4), (200, 1)]
    assert 'profile_file = "acme-pm3.toml"' in device


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["--max-pending", "x"], {}, "ems: --max-pending: 'x': expected a whole number"),
        (
            [],
            {"EMS_HANDSHAKE_TIMEOUT": "-1"},
            "ems: $EMS_HANDSHAKE_TIMEOUT: '-1': expected 0 (off) to 86400 seconds",
        ),
    ],
)
def test_a_bad_limit_is_one_line_naming_flag_or_variable(
    tmp_path: Path, args: list[str], env: dict[str, str], line: str
) -> None:
    done = ems("hub", "serve", "--port", "0", *args, cwd=tmp_path, **env)
    assert done.returncode == 2
    assert one_line(done) == line
    assert not (tmp_path / "ems-data").exists()  # checked before storage is opened


def test_building_the_parser_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ems.cli import build_parser

    for name in ("EMS_DATABASE_URL", "EMS_TLS_CERT", "EMS_MAX_PENDING", "EMS_LIMIT_EXEMPT"):
        monkeypatch.setenv(name, "from-the-environment")
    args = build_parser().parse_args(["hub", "serve"])
    assert "from-the-environment" not in repr(vars(args))


def test_demo_errors_are_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for args, code, message in (
        (("--scenario", "hail"), 2, "ems demo: --scenario: unknown scenario 'hail'"),
        (("--sites", "0"), 2, "ems demo: --sites must be 1..50"),
        (("--sites", "51"), 2, "ems demo: --sites must be 1..50"),
        (("--speed", "0"), 2, "ems demo: --speed must be a number > 0"),
        (("--speed", "inf"), 2, "ems demo: --speed must be a number > 0"),
        (("--speed", "nan"), 2, "ems demo: --speed must be a number > 0"),
        (("--port", "0"), 2, "ems demo: --port must be 1..65535"),
        (("--port", "70000"), 2, "ems demo: --port must be 1..65535"),
        (("--data-dir", str(a_file / "data")), 1, f"ems demo: cannot use {a_file / 'data'}"),
        # Exists, but nothing can be written in it (even as root).
        (("--data-dir", "/proc"), 1, "ems demo: cannot use /proc for the demo's data"),
    ):
        port = ("--port", str(free_port())) if "--port" not in args else ()
        done = ems("demo", *port, *args, cwd=tmp_path)
        assert done.returncode == code, (args, done.stderr)
        assert one_line(done).startswith(message), (args, done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing left behind


def test_demo_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = ems("demo", "--temp", "--port", str(port), cwd=tmp_path)
    assert done.returncode == 1
    assert one_line(done) == f"ems demo: port {port} is in use (try --port)"


def test_sim_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = ems("sim", "--tcp", f"127.0.0.1:{port}", cwd=tmp_path)
    assert done.returncode == 1
    line = one_line(done)  # no pymodbus warning before it
    assert line.startswith(f"ems sim: cannot serve: cannot listen on 127.0.0.1:{port}: "), line
    assert "address already in use" in line


def test_sim_bad_options_are_one_line(tmp_path: Path) -> None:
    for args, message in (
        (("--speed", "inf"), "ems sim: --speed must be a number > 0"),
        (("--speed", "0"), "ems sim: --speed must be a number > 0"),
        (("--scenario", "hail"), "ems sim: --scenario: unknown scenario 'hail'"),
        (("--sites", "0"), "ems sim: --sites must be 1..1000"),
        (("--tcp", "127.0.0.1:70000"), "ems sim: --tcp: expected HOST:PORT"),
    ):
        done = ems("sim", "--tcp", f"127.0.0.1:{free_port()}", *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert one_line(done).startswith(message), (args, done.stderr)


def test_devices_lists_the_catalogue_and_details_one_profile(tmp_path: Path) -> None:
    from drivers.profiles import PROFILES

    table = ems("devices", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == list(PROFILES)
    one = ems("devices", "seplos_v3", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "battery.soc_pct" in one.stdout
    assert "input 4096 (0x1000) x 17" in one.stdout
    line = one_line(ems("devices", "nope", cwd=tmp_path))
    assert line.startswith("ems: profile: unknown profile 'nope' (one of sunspec, ")
    assert ems("devices", "nope", cwd=tmp_path).returncode == 2


def test_sim_lists_its_sites(tmp_path: Path) -> None:
    from simulation.sites import SITES

    done = ems("sim", "--site", "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines() if line[:1] != " "] == list(
        SITES
    )
    assert "  unit 2: eastron_sdm630 (grid)" in done.stdout
    line = one_line(ems("sim", "--site", "nowhere", cwd=tmp_path))
    assert line.startswith("ems sim: --site: unknown site 'nowhere' (one of default")
