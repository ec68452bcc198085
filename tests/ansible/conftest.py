"""The Debian root and the converged site as session fixtures (tests/support/ansible.py
has what they are made of and how tests look into the root).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ansible import (
    Converged,
    Site,
    bookworm_tarball,
    mounts_under,
    require_root_and_debootstrap,
    run,
    site_vars,
)
from tests.support.ports import free_port


@pytest.fixture(scope="session")
def debian_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh bookworm root for this session, with /proc and /dev mounted."""
    require_root_and_debootstrap()
    tarball = bookworm_tarball()
    root = tmp_path_factory.mktemp("pi") / "root"
    root.mkdir()
    run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(tarball)])
    # No service starts from package scripts (invoke-rc.d asks policy-rc.d).
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# EMS test root: no service starts in a chroot\nexit 101\n")
    policy.chmod(0o755)
    # Traffic passes a TLS-inspecting proxy here: the root trusts what the host trusts,
    # so pip (and apt over https) inside it can reach PyPI.
    bundle = "etc/ssl/certs/ca-certificates.crt"
    shutil.copyfile(f"/{bundle}", root / bundle)
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    run(["mount", "-t", "proc", "proc", str(root / "proc")])
    try:
        run(["mount", "--bind", "/dev", str(root / "dev")])
        yield root
    finally:
        for point in sorted(mounts_under(root), key=len, reverse=True):
            subprocess.run(["umount", point], check=False)
        for point in mounts_under(root):
            subprocess.run(["umount", "--lazy", point], check=False)
        # Never delete through a mount (a bound /dev is the host's /dev).
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def converged(debian_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Converged:
    directory = tmp_path_factory.mktemp("site")
    hub_port, sim_port = free_port(), free_port()
    site = Site(
        root=debian_root,
        directory=directory,
        token=f"ems-test-{secrets.token_urlsafe(24)}",
        vars=site_vars(hub_url=f"ws://127.0.0.1:{hub_port}", sim_port=sim_port),
    )
    site.vault_password_file.write_text(secrets.token_hex(16) + "\n")
    site.vault_password_file.chmod(0o600)
    first = site.play()
    if first.returncode != 0:
        pytest.fail(f"the first run failed:\n{first.output}", pytrace=False)
    second = site.play()
    checked = site.play("--check")
    return Converged(site, first, second, checked, hub_port, sim_port)
