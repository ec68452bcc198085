"""deploy/systemd/ems-hub.service and its environment file: verified and scored by
systemd-analyze in a root laid out as an installed hub, and the unit's command line run
with the shipped environment file, as systemd would expand it.

systemd is not PID 1 here, so the unit is never started by systemd itself: what its
sandbox would deny is read from `systemd-analyze security`, and the two things the
hub needs from the system under it (no setrlimit(2), the state directory as its
data dir) are checked on the process the unit's command line starts.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy/systemd/ems-hub.service"
ENV_FILE = REPO / "deploy/systemd/ems-hub.env"
VENV_EMS = "/opt/ems-hub/venv/bin/ems"

# `systemd-analyze security` scores 0 (every protection) to 10 (none). What the hub
# cannot give up, and so what stays marked:
# - PrivateNetwork=, IPAddressDeny=, RestrictAddressFamilies=~AF_(INET|INET6): it
#   serves devices and dashboards on the network and may reach PostgreSQL on another host;
# - RestrictAddressFamilies=~AF_UNIX: PostgreSQL's local socket and the journal;
# - DeviceAllow=: ProtectClock= itself allows reading the RTC (char-rtc r);
# - RootDirectory=/RootImage=: the hub runs from the host's root.
# Together these weigh 1.1. The threshold leaves no room for dropping any further
# protection, and the list catches a newly failing check by name.
EXPOSURE_THRESHOLD = 1.1
ALLOWED_EXPOSURES = {
    "PrivateNetwork=",
    "IPAddressDeny=",
    "RestrictAddressFamilies=~AF_(INET|INET6)",
    "RestrictAddressFamilies=~AF_UNIX",
    "DeviceAllow=",
    "RootDirectory=/RootImage=",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with systemd's own units, the hub's unit and env file, and an executable
    where the unit expects the hub's virtualenv."""
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: run scripts/setup.sh"
    root = tmp_path_factory.mktemp("root")
    units = root / "usr/lib/systemd/system"
    shutil.copytree("/usr/lib/systemd/system", units, symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copyfile(UNIT, root / "etc/systemd/system/ems-hub.service")
    (root / "etc/ems-hub").mkdir()
    shutil.copyfile(ENV_FILE, root / "etc/ems-hub/hub.env")
    ems = root / VENV_EMS.lstrip("/")
    ems.parent.mkdir(parents=True)
    ems.write_text("#!/bin/sh\n# stands for the installed `ems` in this test root\n")
    ems.chmod(0o755)
    return root


def _analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args, f"--root={root}", "ems-hub.service"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unit_verifies(root: Path) -> None:
    verified = _analyze(root, "verify")
    assert verified.returncode == 0, verified.stderr
    # verify exits 0 even for unknown keys: any message at all is a finding.
    assert verified.stdout.strip() == ""
    assert verified.stderr.strip() == ""


def test_a_misspelt_key_is_found(root: Path, tmp_path: Path) -> None:
    """The check above can fail: verify names an unknown directive."""
    broken = tmp_path / "root"
    shutil.copytree(root, broken, symlinks=True)
    unit = broken / "etc/systemd/system/ems-hub.service"
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    verified = _analyze(broken, "verify")
    assert "ProtectHomes" in verified.stderr


def test_unit_security_exposure(root: Path) -> None:
    scored = _analyze(root, "security", "--offline=true")
    assert scored.returncode == 0, scored.stderr
    match = re.search(r"Overall exposure level for ems-hub\.service: (\d+\.\d+)", scored.stdout)
    assert match is not None, scored.stdout
    assert float(match.group(1)) <= EXPOSURE_THRESHOLD, scored.stdout
    failing = {
        line.split()[1] for line in scored.stdout.splitlines() if line.lstrip().startswith("✗")
    }
    assert failing <= ALLOWED_EXPOSURES, scored.stdout


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE):
        found.setdefault(key, []).append(value)
    return found


def test_unit_is_hardened_where_the_hub_needs_it() -> None:
    unit = _directives(UNIT.read_text())
    assert unit["User"] == ["ems-hub"]
    assert unit["StateDirectory"] == ["ems-hub"]
    assert unit["Environment"] == ["EMS_DATA_DIR=%S/ems-hub"]
    assert unit["EnvironmentFile"] == ["/etc/ems-hub/hub.env"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["CapabilityBoundingSet"] == [""]
    # setrlimit(2) is in @resources, denied: soft and hard limits equal, so the hub's
    # raise_fd_limit (hub/limits.py) has nothing to raise.
    assert "~@privileged @resources" in unit["SystemCallFilter"]
    assert re.fullmatch(r"\d+", unit["LimitNOFILE"][0])
    # No secret on the command line (ps shows it): the viewer token comes from the file.
    assert "token" not in unit["ExecStart"][0].lower()


def _environment_file(text: str) -> dict[str, str]:
    """KEY=value lines as systemd reads them (comments and blank lines skipped)."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        env[key.strip()] = value.strip()
    return env


def _fd_limit(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def test_the_units_command_runs_the_hub_with_the_shipped_settings(tmp_path: Path) -> None:
    """ExecStart= as systemd expands it, with the shipped hub.env (only the port made
    free) and LimitNOFILE=: the hub serves from the state directory and never tries to
    raise its descriptor limit."""
    unit = _directives(UNIT.read_text())
    settings = _environment_file(ENV_FILE.read_text())
    port = free_port()
    settings["EMS_PORT"] = str(port)
    # %S is /var/lib; systemd makes StateDirectory= there before the hub starts.
    state = tmp_path / "ems-hub"
    state.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMS_")}
    env.update(settings)
    name, value = unit["Environment"][0].split("=", 1)
    env[name] = value.replace("%S", str(tmp_path))
    command = re.sub(r"\$\{(\w+)\}", lambda m: settings[m.group(1)], unit["ExecStart"][0])
    argv = command.split()
    assert argv[0] == VENV_EMS
    # LimitNOFILE= sets soft and hard alike; here at most this machine's hard limit.
    limit = min(int(unit["LimitNOFILE"][0]), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    log = tmp_path / "hub.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ems", *argv[1:]],
            env=env,
            cwd=state,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: _fd_limit(limit),
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        process.terminate()
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert f"file-descriptor limit: {limit}" in text, text
    assert "cannot raise" not in text
    assert f"storage: SQLite file {state / 'hub.db'}" in text, text
    assert (state / "hub.db").exists()
    assert "Traceback" not in text


def test_an_empty_host_is_refused_not_every_interface(tmp_path: Path) -> None:
    """``--host ${EMS_HOST}`` with the variable left empty would bind every interface."""
    done = subprocess.run(
        [sys.executable, "-m", "ems", "hub", "serve", "--host", "", "--port", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "EMS_DATA_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("ems: --host: empty"), done.stderr


def test_the_environment_file_names_only_what_the_hub_reads() -> None:
    """Every variable the shipped file sets or shows is one of the hub's section of
    docs/configuration.md (a renamed variable would be silently ignored), but for
    EMS_HOST and EMS_PORT, which the unit passes as --host and --port."""
    text = (REPO / "docs/configuration.md").read_text()
    section = text[text.index("## The hub: flags and environment") :]
    section = section[: section.index("\n## ", 1)]
    documented = set(re.findall(r"\bEMS_[A-Z_]+\b", section))
    shipped = set(re.findall(r"^#? ?(EMS_[A-Z_]+)=", ENV_FILE.read_text(), re.MULTILINE))
    assert shipped - documented == {"EMS_HOST", "EMS_PORT"}
