"""scripts/run.sh: installs only the demo's extras, once; later starts need no network.

Each test runs a copy of the scripts in a folder of its own (the scripts work
relative to their checkout), with a virtualenv whose ``ems`` is this checkout's.
pip is pointed at a closed port, so any call to it fails: a run that reaches
``ems demo`` did not call pip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """scripts/ and pyproject.toml in a folder, with a virtualenv whose ems is ours."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "scripts", root / "scripts")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    venv.create(root / ".venv", with_pip=False)
    (root / ".venv" / "bin" / "ems").symlink_to(REPO / ".venv" / "bin" / "ems")
    return root


def stamp(root: Path, extras: str) -> None:
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()
    (root / ".venv" / ".ems-install-stamp").write_text(f"{digest} {extras}\n")


def run_sh(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PIP_INDEX_URL": f"http://127.0.0.1:{free_port()}/simple",
        "PIP_NO_INDEX": "",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
    }
    command = ["bash", str(root / "scripts" / "run.sh"), *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("extras", ["edge,sim,hub", "dev"])
def test_a_matching_stamp_starts_the_demo_without_pip(checkout: Path, extras: str) -> None:
    stamp(checkout, extras)
    done = run_sh(checkout, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ems demo")
    assert "install:" not in done.stderr


def test_a_changed_pyproject_calls_pip_for_the_demo_extras_only(checkout: Path) -> None:
    stamp(checkout, "edge,sim,hub")
    with (checkout / "pyproject.toml").open("a") as file:
        file.write("\n# a new dependency\n")
    done = run_sh(checkout, "--help")
    assert done.returncode != 0  # pip cannot reach its index (this venv has no pip at all)
    assert "install: installing the project with its edge,sim,hub extras" in done.stderr
    assert "usage: ems demo" not in done.stdout


def test_another_install_is_not_taken_for_the_demo_s(checkout: Path) -> None:
    stamp(checkout, "edge")
    done = run_sh(checkout, "--help")
    assert done.returncode != 0
    assert "install: installing the project with its edge,sim,hub extras" in done.stderr
