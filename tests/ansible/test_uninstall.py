"""uninstall.yml run into the root the role installed: the service's unit, the udev
rule, the token, the config and every installed version go; the outbox and the user
owning it stay unless ems_edge_remove_buffer is true; a second run changes nothing; and
the playbook installs again afterwards (which also leaves the session's root installed
for any test that runs after this one), over what the role's first layout left."""

from __future__ import annotations

import os

import pytest

from tests.support.ansible import (
    Converged,
    group,
    in_root,
    passwd,
    require_root_and_debootstrap,
)

pytestmark = [pytest.mark.slow, pytest.mark.needs_root, pytest.mark.timeout(1800)]

USER = "ems-edge"
OUTBOX = "var/lib/ems-edge/buffer.db"
REMOVED = (
    "etc/systemd/system/ems-edge.service",
    "etc/systemd/system/multi-user.target.wants/ems-edge.service",
    "etc/udev/rules.d/70-ems-edge-rs485.rules",
    "etc/credstore/ems-edge.token",
    "etc/ems-edge",
    "opt/ems-edge",
)


@pytest.fixture(scope="module", autouse=True)
def _root_and_debootstrap() -> None:
    require_root_and_debootstrap()


def test_uninstall_keeps_the_outbox_by_default_then_removes_it_on_request(
    converged: Converged,
) -> None:
    site, root = converged.site, converged.site.root
    outbox = root / OUTBOX
    if not outbox.exists():
        # No agent has run in this session's root yet (this file run alone): stand in
        # for the outbox it would have left, owned by its user as systemd makes it.
        user = passwd(root)[USER]
        outbox.parent.mkdir(parents=True, exist_ok=True)
        outbox.write_bytes(b"SQLite format 3\x00 readings not yet acknowledged")
        for path in (outbox.parent, outbox):
            os.chown(path, user["uid"], user["gid"])
    kept = outbox.read_bytes()
    for relative in REMOVED:
        assert os.path.lexists(root / relative), relative

    removed = site.play(playbook="uninstall.yml")
    assert removed.returncode == 0, removed.output
    assert removed.changed > 0, removed.output
    for relative in REMOVED:
        assert not os.path.lexists(root / relative), relative
    assert in_root(root, "systemctl", "is-enabled", "ems-edge.service").returncode != 0
    assert outbox.read_bytes() == kept
    assert USER in passwd(root)
    assert "The outbox /var/lib/ems-edge and the user ems-edge are kept" in removed.output

    again = site.play(playbook="uninstall.yml")
    assert again.returncode == 0, again.output
    assert again.changed == 0, again.output

    purged = site.play(playbook="uninstall.yml", ems_edge_remove_buffer=True)
    del site.vars["ems_edge_remove_buffer"]
    assert purged.returncode == 0, purged.output
    assert purged.changed > 0, purged.output
    assert not (root / "var/lib/ems-edge").exists()
    assert USER not in passwd(root)
    assert USER not in group(root)

    # What the role's first layout left, which the next install replaces: a
    # virtualenv directory where the link to the running version goes, and wheels/.
    made = in_root(root, "/usr/bin/python3", "-m", "venv", "--without-pip", "/opt/ems-edge/venv")
    assert made.returncode == 0, made.stderr
    (root / "opt/ems-edge/wheels").mkdir()
    (root / "opt/ems-edge/wheels/ems_switchboard-0.0.9-py3-none-any.whl").write_bytes(b"old")

    reinstalled = site.play()
    assert reinstalled.returncode == 0, reinstalled.output
    assert reinstalled.failed == 0, reinstalled.output
    assert (root / "opt/ems-edge/venv").is_symlink()
    assert not (root / "opt/ems-edge/wheels").exists()
    helped = in_root(root, "/opt/ems-edge/venv/bin/ems", "edge", "--help", user=USER)
    assert helped.returncode == 0, helped.stderr
    enabled = in_root(root, "systemctl", "is-enabled", "ems-edge.service")
    assert enabled.stdout.strip() == "enabled"
