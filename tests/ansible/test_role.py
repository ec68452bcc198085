"""The ems_edge role run into a real Debian bookworm root, asserted from outside."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.support.ansible import (
    DEVICE_ID,
    RESTART_HANDLER,
    Converged,
    PlayResult,
    build_wheel,
    group,
    group_members,
    in_root,
    owner_mode,
    passwd,
    project_version,
    require_root_and_debootstrap,
)

pytestmark = [pytest.mark.slow, pytest.mark.needs_root, pytest.mark.timeout(1800)]

USER = "ems-edge"
UNIT = "etc/systemd/system/ems-edge.service"
CONFIG = "etc/ems-edge/config.toml"
TOKEN = "etc/credstore/ems-edge.token"
UDEV_RULE = "etc/udev/rules.d/70-ems-edge-rs485.rules"
WHEEL = "ems_switchboard-{version}-py3-none-any.whl"

# `systemd-analyze security` scores 0 (every protection) to 10 (none). What the
# agent cannot give up, and so what stays marked here:
# - PrivateNetwork=, IPAddressDeny=, RestrictAddressFamilies=~AF_(INET|INET6):
#   it talks to the hub and to Modbus TCP devices at addresses only the site knows;
# - RestrictAddressFamilies=~AF_UNIX: sd_notify (READY=1, WATCHDOG=1) and the journal;
# - PrivateDevices=, DeviceAllow=: the serial adapter (PrivateDevices= would hide it;
#   a closed policy with an allow-list of serial classes replaces it);
# - PrivateUsers=: a user namespace maps only the service's own user and group, so
#   the dialout group that opens the adapter would be lost;
# - ProtectClock=, SystemCallFilter=~@clock, SystemCallFilter=~@privileged: all three
#   stand for adjtimex(2), which the agent calls read-only to learn whether NTP has
#   synced the clock (edge/clock.py; a Pi has no battery clock). Without CAP_SYS_TIME
#   (the bounding set is empty) it cannot set the clock with it;
# - ProcSubset=: the agent reads /proc/sys/kernel/random/boot_id (edge/clock.py);
# - RootDirectory=/RootImage=: the agent runs from the Pi's own root.
# Together these weigh 1.9; everything else is on. The threshold 2.0 leaves no room
# for dropping any further protection that weighs 0.2 or more (NoNewPrivileges=,
# ProtectSystem=, ProtectHome=, the capability bounding set...), and the list
# below catches any other newly failing check by name.
EXPOSURE_THRESHOLD = 2.0
ALLOWED_EXPOSURES = {
    "PrivateNetwork=",
    "IPAddressDeny=",
    "RestrictAddressFamilies=~AF_(INET|INET6)",
    "RestrictAddressFamilies=~AF_UNIX",
    "PrivateDevices=",
    "DeviceAllow=",
    "PrivateUsers=",
    "ProtectClock=",
    "SystemCallFilter=~@clock",
    "SystemCallFilter=~@privileged",
    "ProcSubset=",
    "RootDirectory=/RootImage=",
}


@pytest.fixture(scope="module", autouse=True)
def _root_and_debootstrap() -> None:
    require_root_and_debootstrap()


def test_first_run_installs(converged: Converged) -> None:
    assert converged.first.returncode == 0
    assert converged.first.failed == 0
    assert converged.first.changed > 0


def test_second_run_changes_nothing(converged: Converged) -> None:
    second = converged.second
    assert second.returncode == 0, second.output
    assert second.changed == 0, second.output
    assert not second.restart_notified


def test_check_mode_on_a_converged_pi_reports_nothing(converged: Converged) -> None:
    """`--check --diff` (README, "what would change") on a Pi that is up to date."""
    checked = converged.checked
    assert checked.returncode == 0, checked.output
    assert checked.changed == 0, checked.output
    assert not checked.restart_notified, checked.output
    # The wheel is still built (on the controller only): it is what tells whether
    # the Pi would change.
    assert "Build a wheel of this checkout on the controller" in checked.output


def test_the_default_installs_a_wheel_built_from_this_checkout(converged: Converged) -> None:
    site = converged.site
    assert "ems_edge_wheel" not in site.vars
    version = project_version()
    built = site.directory / ".cache/ems-switchboard/wheels" / WHEEL.format(version=version)
    copied = site.root / "opt/ems-edge/versions" / version / built.name
    assert copied.read_bytes() == built.read_bytes()
    assert _running_version(site.root) == version
    assert (site.root / "opt/ems-edge/venv").readlink() == Path(f"versions/{version}/venv")


def test_agent_runs_as_a_system_user_without_login(converged: Converged) -> None:
    root = converged.site.root
    user = passwd(root)[USER]
    assert user["uid"] < 1000  # a system user
    assert user["shell"] == "/usr/sbin/nologin"
    assert user["gid"] == group(root)[USER]
    assert USER in group_members(root)["dialout"]
    shadow = dict(line.split(":")[:2] for line in (root / "etc/shadow").read_text().splitlines())
    assert shadow[USER].startswith("!")  # no password login either


@pytest.mark.parametrize(
    ("path", "owner", "group_name", "mode"),
    [
        ("etc/ems-edge", "root", USER, "0o750"),
        (CONFIG, "root", USER, "0o640"),
        ("etc/credstore", "root", "root", "0o700"),
        (TOKEN, "root", "root", "0o600"),
        (UNIT, "root", "root", "0o644"),
        (UDEV_RULE, "root", "root", "0o644"),
        ("opt/ems-edge", "root", "root", "0o755"),
        ("opt/ems-edge/venv/bin/ems", "root", "root", "0o755"),
    ],
)
def test_owners_and_modes(
    converged: Converged, path: str, owner: str, group_name: str, mode: str
) -> None:
    assert owner_mode(converged.site.root, path) == (owner, group_name, mode)


def test_token_is_root_only_and_nowhere_else(converged: Converged) -> None:
    site = converged.site
    assert (site.root / TOKEN).read_text() == site.token
    config = (site.root / CONFIG).read_text()
    assert site.token not in config
    assert "token" not in tomllib.loads(config)["hub"]
    for output in site.outputs:
        assert site.token not in output
    # The agent's own user cannot read it; systemd hands it a copy (LoadCredential=).
    denied = in_root(site.root, "cat", f"/{TOKEN}", user=USER)
    assert denied.returncode != 0
    assert "Permission denied" in denied.stderr
    # The vault on the controller is encrypted.
    vault = site.directory / "inventory/host_vars/test-pi/vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")


def test_config_is_rendered_from_the_inventory(converged: Converged) -> None:
    site = converged.site
    config = tomllib.loads((site.root / CONFIG).read_text())
    assert config["device_id"] == DEVICE_ID
    assert config["hub"] == {"url": site.vars["ems_edge_hub_url"]}
    assert config["buffer"]["path"] == "/var/lib/ems-edge/buffer.db"
    assert config["sampling"]["interval_s"] == site.vars.get("ems_edge_sampling_interval_s", 1.0)
    assert config["clock"]["require_sync"] is False
    assert config["bus"] == site.vars["ems_edge_buses"]
    assert config["device"] == site.vars["ems_edge_devices"]


def test_udev_rule_names_the_adapter(converged: Converged) -> None:
    rule = (converged.site.root / UDEV_RULE).read_text()
    (line,) = [line for line in rule.splitlines() if line and not line.startswith("#")]
    assert 'SUBSYSTEM=="tty"' in line
    assert 'ATTRS{idVendor}=="0403"' in line
    assert 'ATTRS{idProduct}=="6001"' in line
    assert 'ATTRS{serial}=="EMSTEST1"' in line
    assert 'SYMLINK+="rs485"' in line
    assert 'GROUP="dialout"' in line


def test_unit_is_enabled(converged: Converged) -> None:
    root = converged.site.root
    link = root / "etc/systemd/system/multi-user.target.wants/ems-edge.service"
    assert link.is_symlink()
    assert link.readlink() == Path("/", UNIT)
    enabled = in_root(root, "systemctl", "is-enabled", "ems-edge.service")
    assert enabled.stdout.strip() == "enabled"


def test_agent_is_installed_with_the_edge_extra_only(converged: Converged) -> None:
    root = converged.site.root
    python = "/opt/ems-edge/venv/bin/python"
    imports = in_root(root, python, "-c", "import edge, drivers, telemetry, pymodbus, serial")
    assert imports.returncode == 0, imports.stderr
    # A Pi never needs the hub's libraries (docs/architecture.md).
    hub_only = in_root(root, python, "-c", "import fastapi")
    assert hub_only.returncode != 0
    assert "No module named 'fastapi'" in hub_only.stderr
    helped = in_root(root, "/opt/ems-edge/venv/bin/ems", "edge", "--help", user=USER)
    assert helped.returncode == 0, helped.stderr
    assert "run" in helped.stdout


def test_unit_is_hardened(converged: Converged) -> None:
    text = (converged.site.root / UNIT).read_text()
    directives = re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE)
    service = {key: value for key, value in directives}
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["StateDirectory"] == "ems-edge"
    assert service["LoadCredential"] == "token:/etc/credstore/ems-edge.token"
    assert service["User"] == USER
    assert service["DevicePolicy"] == "closed"
    assert ("DeviceAllow", "char-ttyUSB rw") in directives
    assert "PrivateDevices" not in service
    assert "token" not in service["ExecStart"]


def test_unit_verifies(converged: Converged) -> None:
    verified = in_root(converged.site.root, "systemd-analyze", "verify", "ems-edge.service")
    assert verified.returncode == 0, verified.stderr
    # verify exits 0 even for unknown keys: any message at all is a finding.
    assert verified.stdout.strip() == ""
    assert verified.stderr.strip() == ""


def test_unit_security_exposure(converged: Converged) -> None:
    scored = in_root(
        converged.site.root, "systemd-analyze", "security", "--offline=true", "ems-edge.service"
    )
    assert scored.returncode == 0, scored.stderr
    match = re.search(r"Overall exposure level for ems-edge\.service: (\d+\.\d+)", scored.stdout)
    assert match is not None, scored.stdout
    assert float(match.group(1)) <= EXPOSURE_THRESHOLD, scored.stdout
    failing = {
        line.split()[1] for line in scored.stdout.splitlines() if line.lstrip().startswith("✗")
    }
    assert failing <= ALLOWED_EXPOSURES, scored.stdout


def test_unit_lets_the_agent_check_the_clock(converged: Converged) -> None:
    """The two things edge/clock.py needs from the system, which the usual hardening
    would take away (silently: adjtimex would fail with EPERM, the agent would see
    "the kernel does not say" and stamp readings with an unsynced clock)."""
    scored = in_root(
        converged.site.root, "systemd-analyze", "security", "--offline=true", "ems-edge.service"
    )
    assert "and @clock is included (e.g. adjtimex is allowed)" in scored.stdout
    service = (converged.site.root / UNIT).read_text()
    assert "\nProcSubset=" not in service
    assert "\nProtectClock=" not in service


def test_changing_the_config_restarts_the_agent_once(converged: Converged) -> None:
    site = converged.site
    changed = site.play(ems_edge_sampling_interval_s=2.0)
    assert changed.returncode == 0, changed.output
    assert changed.restart_notified, changed.output
    assert changed.changed == 1, changed.output  # the config file, nothing else
    assert tomllib.loads((site.root / CONFIG).read_text())["sampling"]["interval_s"] == 2.0

    again = site.play()
    assert again.returncode == 0, again.output
    assert RESTART_HANDLER not in again.output
    assert again.changed == 0, again.output


def test_upgrade_then_rollback_then_forward_again(converged: Converged, tmp_path: Path) -> None:
    """A newer wheel is installed into a virtualenv of its own and restarts the agent;
    pinning the previous version switches back to its kept virtualenv (nothing built,
    copied or installed) and restarts the agent; removing the pin goes forward again."""
    site = converged.site
    versions = site.root / "opt/ems-edge/versions"
    version = project_version()
    assert _running_version(site.root) == version
    wheel = build_wheel(tmp_path, version_suffix=".post1")
    newer = wheel.name.split("-")[1]

    # What would change: the new version and a restart, and nothing changes yet.
    would = site.play("--check", ems_edge_wheel=str(wheel))
    assert would.returncode == 0, would.output
    assert would.changed > 0, would.output
    assert would.restart_notified, would.output
    assert _running_version(site.root) == version
    assert sorted(p.name for p in versions.iterdir()) == [version]

    upgraded = site.play(ems_edge_wheel=str(wheel))
    assert upgraded.returncode == 0, upgraded.output
    assert upgraded.restart_notified, upgraded.output
    assert _running_version(site.root) == newer
    assert (site.root / "opt/ems-edge/previous").readlink() == Path(f"versions/{version}")
    assert sorted(p.name for p in versions.iterdir()) == sorted([version, newer])

    rolled_back = site.play(ems_edge_version=version)
    assert rolled_back.returncode == 0, rolled_back.output
    assert rolled_back.restart_notified, rolled_back.output
    assert _running_version(site.root) == version
    assert not _ran(rolled_back, "Build a wheel of this checkout on the controller")
    assert not _ran(rolled_back, "Install the agent with its edge extra")
    # The version left stays, to go forward again without a download.
    assert (site.root / "opt/ems-edge/previous").readlink() == Path(f"versions/{newer}")
    assert sorted(p.name for p in versions.iterdir()) == sorted([version, newer])

    pinned = site.play("--check")
    assert pinned.returncode == 0, pinned.output
    assert pinned.changed == 0, pinned.output
    assert not pinned.restart_notified, pinned.output

    forward = site.play(ems_edge_version="")
    assert forward.returncode == 0, forward.output
    assert forward.restart_notified, forward.output
    assert not _ran(forward, "Install the agent with its edge extra")
    assert _running_version(site.root) == newer

    # A pinned version that is neither kept on the Pi nor the wheel's is refused.
    missing = site.play(ems_edge_version="0.0.1")
    assert missing.returncode != 0
    assert "ems_edge_version is 0.0.1, which is not kept on test-pi" in missing.output
    assert _running_version(site.root) == newer
    site.vars["ems_edge_version"] = ""


def test_an_unusable_hub_url_is_refused_before_anything_changes(converged: Converged) -> None:
    """`ws://` alone would install an agent that retries for ever (more cases in
    test_preflight.py, without a root)."""
    site = converged.site
    unit_before = (site.root / UNIT).stat().st_mtime_ns
    config_before = (site.root / CONFIG).read_text()
    good = site.vars["ems_edge_hub_url"]
    refused = site.play(ems_edge_hub_url="ws://")
    site.vars["ems_edge_hub_url"] = good
    assert refused.returncode != 0
    assert 'ems_edge_hub_url is "ws://" for test-pi' in refused.output
    assert "ws://HOST[:PORT][/PATH]" in refused.output
    assert (site.root / UNIT).stat().st_mtime_ns == unit_before
    assert (site.root / CONFIG).read_text() == config_before


def _running_version(root: Path) -> str:
    query = "import importlib.metadata as m; print(m.version('ems-switchboard'))"
    done = in_root(root, "/opt/ems-edge/venv/bin/python", "-c", query)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _ran(result: PlayResult, task: str) -> bool:
    """Whether a task did something (its result line names the host as ok or changed)."""
    section = result.output.partition(f"TASK [ems_edge : {task}]")[2]
    if not section:
        return False
    block = section.split("\nTASK [", 1)[0]
    return "changed: [test-pi]" in block or "ok: [test-pi]" in block
