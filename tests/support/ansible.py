"""A Debian bookworm root standing in for the Pi, and the playbook run against it.

The root is made once with debootstrap (minbase plus what Raspberry Pi OS ships:
python3, python3-venv, python3-apt, systemd, ca-certificates) and cached as a
tarball under /var/cache/ems-test/; each test session unpacks a fresh copy,
mounts /proc and /dev in it, blocks service starts with a policy-rc.d, and
runs ansible/playbook.yml into it through the community.general.chroot
connection. There is no init in a chroot: the role sees that
(/run/systemd/system is absent) and installs and enables the unit without
starting it; the streaming test starts the agent the way the unit says.

These tests need root and take minutes. Without root or debootstrap they fail
(never skip): the test command allows no skipped test.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
VENV_BIN = Path(sys.executable).parent
CACHE_DIR = Path(os.environ.get("EMS_TEST_CACHE", "/var/cache/ems-test"))
SUITE = "bookworm"
# What Raspberry Pi OS Lite has and debootstrap's minbase lacks.
ROOT_PACKAGES = ("python3", "python3-venv", "python3-apt", "systemd", "ca-certificates")
HOST = "test-pi"
DEVICE_ID = "ems_test_001"
RESTART_HANDLER = "RUNNING HANDLER [ems_edge : Restart ems-edge]"
_RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def require_root_and_debootstrap() -> None:
    """Fail (not skip) where these tests cannot run: the test command allows no skips."""
    if os.geteuid() != 0:
        pytest.fail("the Ansible tests need root (chroot, mount, debootstrap)", pytrace=False)
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is missing: run scripts/setup.sh", pytrace=False)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs a command, failing the test with its output when it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result


def _debian_mirror() -> str:
    """The Debian mirror this machine's apt uses, so debootstrap goes the same way."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            uri = match.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


def bookworm_tarball() -> Path:
    """The cached root, rebuilt with debootstrap when missing (about a minute or two)."""
    key = hashlib.sha256(" ".join((SUITE, "minbase", *ROOT_PACKAGES)).encode()).hexdigest()
    tarball = CACHE_DIR / f"{SUITE}-minbase-{key[:12]}.tar"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        build = CACHE_DIR / f"build-{os.getpid()}"
        shutil.rmtree(build, ignore_errors=True)
        try:
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(ROOT_PACKAGES)}",
                    SUITE,
                    str(build),
                    _debian_mirror(),
                ],
                timeout=900,
            )
            run(["chroot", str(build), "apt-get", "clean"])
            partial = tarball.with_suffix(".partial")
            run(["tar", "-C", str(build), "--numeric-owner", "-cf", str(partial), "."])
            partial.rename(tarball)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        return tarball


def mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point.startswith(prefix) or point == str(root):
            points.append(point)
    return points


def build_wheel(out: Path, *, version_suffix: str = "") -> Path:
    """A wheel of this repository (`pip wheel --no-deps`), as an installer builds it.

    Built from a copy of the tree: setuptools' build/ directory in the checkout can
    hold modules deleted since, which would end up in the wheel.
    """
    tree = out / "tree"
    shutil.copytree(
        REPO,
        tree,
        ignore=shutil.ignore_patterns(
            ".*", "build", "dist", "*.egg-info", "__pycache__", "tests", "ansible", "bench"
        ),
    )
    pyproject = tree / "pyproject.toml"
    text = pyproject.read_text()
    version = tomllib.loads(text)["project"]["version"]
    if version_suffix:
        bumped = f'version = "{version}{version_suffix}"'
        pyproject.write_text(text.replace(f'version = "{version}"', bumped, 1))
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(tree)],
        timeout=300,
    )
    (wheel,) = out.glob(f"ems_switchboard-{version}{version_suffix}-*.whl")
    return wheel


def project_version() -> str:
    """The version in pyproject.toml, as a wheel's file name spells it."""
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return str(version)


@dataclass
class PlayResult:
    returncode: int
    output: str
    ok: int
    changed: int
    failed: int

    @property
    def restart_notified(self) -> bool:
        return RESTART_HANDLER in self.output


@dataclass
class Site:
    """The test inventory (one Pi: the chroot) and the playbook runs against it."""

    root: Path
    directory: Path
    token: str
    vars: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    @property
    def vault_password_file(self) -> Path:
        return self.directory / "vault-password"

    def _write_inventory(self) -> None:
        host_vars = self.directory / "inventory/host_vars" / HOST
        host_vars.mkdir(parents=True, exist_ok=True)
        hosts = {
            "ems_edge": {
                "hosts": {
                    HOST: {
                        "ansible_host": str(self.root),
                        "ansible_connection": "community.general.chroot",
                        "ansible_python_interpreter": "/usr/bin/python3",
                    }
                }
            }
        }
        # JSON is YAML: what the installer's files hold, without a YAML writer.
        (self.directory / "inventory/hosts.yml").write_text(json.dumps(hosts, indent=2))
        (host_vars / "vars.yml").write_text(json.dumps(self.vars, indent=2))
        vault = host_vars / "vault.yml"
        vault.write_text(json.dumps({"vault_ems_edge_token": self.token}))
        run(
            [
                str(VENV_BIN / "ansible-vault"),
                "encrypt",
                "--vault-password-file",
                str(self.vault_password_file),
                str(vault),
            ],
            env=ansible_env(self.directory),
        )

    def play(self, *extra: str, playbook: str = "playbook.yml", **changes: Any) -> PlayResult:
        """Runs a playbook of ansible/ after applying ``changes`` to the host's vars.

        ``token=`` changes the token in the vault."""
        if "token" in changes:
            self.token = changes.pop("token")
        self.vars.update(changes)
        self._write_inventory()
        cmd = [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(self.directory / "inventory/hosts.yml"),
            "--vault-password-file",
            str(self.vault_password_file),
            "-v",
            "--diff",
            *extra,
            playbook,
        ]
        done = subprocess.run(
            cmd,
            cwd=ANSIBLE_DIR,
            env=ansible_env(self.directory),
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        output = done.stdout + done.stderr
        self.outputs.append(output)
        # Kept for reading after a failure: pytest's tmp directories outlive the session.
        (self.directory / f"play-{len(self.outputs)}.log").write_text(output)
        recap = {m["host"]: m for m in _RECAP.finditer(done.stdout)}.get(HOST)
        if recap is None:
            pytest.fail(f"no play recap for {HOST}:\n{output}", pytrace=False)
        return PlayResult(
            returncode=done.returncode,
            output=output,
            ok=int(recap["ok"]),
            changed=int(recap["changed"]),
            failed=int(recap["failed"]),
        )


def ansible_env(home: Path) -> dict[str, str]:
    """A clean environment: the host's PIP_* and CA variables must not leak into the root."""
    return {
        "PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_HOME": str(home / ".ansible"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


def site_vars(*, hub_url: str, sim_port: int) -> dict[str, Any]:
    """The Pi's plain vars: the simulated site's four devices on one Modbus TCP bus.

    What gets installed is left at the role's default: a wheel built on the
    controller (this machine) from this checkout."""
    return {
        "ems_edge_device_id": DEVICE_ID,
        "ems_edge_hub_url": hub_url,
        "ems_edge_token": "{{ vault_ems_edge_token }}",
        "ems_edge_pip_environment": {
            "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
            "PIP_DEFAULT_TIMEOUT": "120",
        },
        # This machine's kernel may never report NTP sync (a container): do not wait for it.
        "ems_edge_clock_require_sync": False,
        "ems_edge_rs485_vendor_id": "0403",
        "ems_edge_rs485_product_id": "6001",
        "ems_edge_rs485_serial": "EMSTEST1",
        "ems_edge_buses": [
            {"name": "site", "type": "tcp", "host": "127.0.0.1", "port": sim_port, "timeout_s": 1.0}
        ],
        # The simulator's default unit ids (simulation/default_site.py, ``Unit``).
        "ems_edge_devices": [
            {"name": name, "role": role, "profile": profile, "bus": "site", "unit": unit}
            for name, role, profile, unit in (
                ("inverter", "inverter", "sunspec", 1),
                ("grid-meter", "grid", "eastron_sdm630", 2),
                ("mppt", "solar", "epever_tracer", 3),
                ("bms", "battery", "seplos_v3", 4),
            )
        ],
    }


@dataclass(frozen=True)
class Converged:
    """The first run into the fresh root, the run right after it, and a `--check` run
    after that (the README's "what would change")."""

    site: Site
    first: PlayResult
    second: PlayResult
    checked: PlayResult
    hub_port: int
    sim_port: int


def in_root(root: Path, *cmd: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a command inside the root (as ``user``, with its groups), without failing."""
    prefix = ["chroot"]
    if user is not None:
        entry = passwd(root)[user]
        groups = [g for g, members in group_members(root).items() if user in members]
        gids = [str(entry["gid"])] + [str(group(root)[g]) for g in groups]
        prefix += [f"--userspec={entry['uid']}:{entry['gid']}", f"--groups={','.join(gids)}"]
    return subprocess.run(
        [*prefix, str(root), *cmd],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/"},
        timeout=120,
    )


def owner_mode(root: Path, relative: str) -> tuple[str, str, str]:
    """A file's owner, group (names in the root) and mode (``"0o640"``)."""
    info = (root / relative).stat()
    users = {entry["uid"]: name for name, entry in passwd(root).items()}
    groups = {gid: name for name, gid in group(root).items()}
    return users[info.st_uid], groups[info.st_gid], oct(stat.S_IMODE(info.st_mode))


def passwd(root: Path) -> dict[str, dict[str, Any]]:
    users = {}
    for line in (root / "etc/passwd").read_text().splitlines():
        name, _, uid, gid, _gecos, home, shell = line.split(":")
        users[name] = {"uid": int(uid), "gid": int(gid), "home": home, "shell": shell}
    return users


def group(root: Path) -> dict[str, int]:
    return {
        line.split(":")[0]: int(line.split(":")[2])
        for line in (root / "etc/group").read_text().splitlines()
    }


def group_members(root: Path) -> dict[str, list[str]]:
    members = {}
    for line in (root / "etc/group").read_text().splitlines():
        name, _, _, listed = line.split(":")
        members[name] = [m for m in listed.split(",") if m]
    return members
