"""The playbook and the role pass ansible-lint's production profile and a syntax check,
and the example inventory passes the role's own validation."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.ansible import ANSIBLE_DIR, VENV_BIN, ansible_env

EXAMPLE_INVENTORY = "inventory/example-site/hosts.yml"


def _run(tmp_path_factory: pytest.TempPathFactory, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd),
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path_factory.mktemp("ansible-home")),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_ansible_lint_production_profile(tmp_path_factory: pytest.TempPathFactory) -> None:
    linted = _run(
        tmp_path_factory,
        str(VENV_BIN / "ansible-lint"),
        "--profile",
        "production",
        "--offline",
        "--project-dir",
        str(ANSIBLE_DIR),
        "playbook.yml",
        "uninstall.yml",
        "roles/ems_edge",
        "inventory",
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "Profile 'production' was required, and it passed." in linted.stdout + linted.stderr


@pytest.mark.parametrize("playbook", ["playbook.yml", "uninstall.yml"])
def test_playbook_syntax_check(tmp_path_factory: pytest.TempPathFactory, playbook: str) -> None:
    checked = _run(
        tmp_path_factory,
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        EXAMPLE_INVENTORY,
        "--syntax-check",
        playbook,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"playbook: {playbook}" in checked.stdout


def _preflight_example(tmp_path_factory: pytest.TempPathFactory, *extra: str) -> str:
    """The example site's Pi, checked against this machine (local connection, preflight only:
    argument specs and the role's assertions; nothing is changed)."""
    done = _run(
        tmp_path_factory,
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        EXAMPLE_INVENTORY,
        "-e",
        "ansible_connection=local",
        "-e",
        "ansible_python_interpreter=/usr/bin/python3",
        "--tags",
        "preflight",
        *extra,
        "playbook.yml",
    )
    return f"rc={done.returncode}\n{done.stdout}{done.stderr}"


def test_example_inventory_passes_the_role_validation(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    output = _preflight_example(tmp_path_factory, "-e", "vault_ems_edge_token=example-token")
    assert output.startswith("rc=0\n"), output
    assert "Validating arguments against arg spec 'main'" in output
    assert "Assert the buses and devices are consistent" in output
    assert "changed=0" in output


def test_example_vault_placeholder_is_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    output = _preflight_example(tmp_path_factory)
    assert not output.startswith("rc=0\n"), output
    assert "ems_edge_token is not match('REPLACE-WITH-')" in output
    # The installer sees what to do.
    assert "ems_edge_token for ems-001 is empty, still the example's placeholder" in output
    assert "vault_ems_edge_token" in output
