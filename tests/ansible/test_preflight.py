"""The role's preflight refuses a bad inventory with a message naming the variable and
what to write instead, before anything changes, and lets a good one through.

One run checks every case: each case is a host of its own (local connection, only the
`preflight` tag, so nothing is installed), with the test site's vars changed by one key.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.support.ansible import ANSIBLE_DIR, VENV_BIN, ansible_env, site_vars

pytestmark = pytest.mark.slow

BASE = {
    **site_vars(hub_url="wss://hub.example.org", sim_port=502),
    "ems_edge_token": "ems-test-token",
}
DEVICES: list[dict[str, Any]] = BASE["ems_edge_devices"]
ACCEPTED: dict[str, dict[str, Any]] = {
    "wss-host": {"ems_edge_hub_url": "wss://hub.example.org"},
    "ws-ip-port-path": {"ems_edge_hub_url": "ws://192.168.1.10:8000/ems"},
    "ws-ipv6-port": {"ems_edge_hub_url": "ws://[fd00::1]:8000"},
    "ws-single-label": {"ems_edge_hub_url": "ws://hub"},
    "gateway-unit-0": {"ems_edge_devices": [{**DEVICES[0], "unit": 0}, *DEVICES[1:]]},
}
# Each refused case: the changed vars and what the message must say.
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "ws-no-host": ({"ems_edge_hub_url": "ws://"}, 'ems_edge_hub_url is "ws://"'),
    "wss-port-no-host": ({"ems_edge_hub_url": "wss://:8000"}, 'ems_edge_hub_url is "wss://:8000"'),
    "http": ({"ems_edge_hub_url": "http://hub.example.org"}, "ws://HOST[:PORT][/PATH]"),
    "no-scheme": ({"ems_edge_hub_url": "hub.example.org"}, "ws://HOST[:PORT][/PATH]"),
    "port-0": ({"ems_edge_hub_url": "ws://hub:0"}, "a port from 1 to 65535"),
    "port-65536": ({"ems_edge_hub_url": "ws://hub:65536"}, "a port from 1 to 65535"),
    "port-word": ({"ems_edge_hub_url": "ws://hub:http"}, 'ems_edge_hub_url is "ws://hub:http"'),
    "userinfo": ({"ems_edge_hub_url": "ws://me@hub"}, "no user, query or fragment"),
    "query": ({"ems_edge_hub_url": "ws://hub/?a=1"}, "no user, query or fragment"),
    "space": ({"ems_edge_hub_url": "ws://hub example"}, "for example wss://hub.example.org"),
    "no-hub-url": ({"ems_edge_hub_url": None}, "missing required arguments: ems_edge_hub_url"),
    "device-id": ({"ems_edge_device_id": "ems 001"}, 'ems_edge_device_id is "ems 001"'),
    "empty-token": ({"ems_edge_token": " "}, "ems_edge_token for empty-token is empty"),
    "placeholder-token": (
        {"ems_edge_token": "REPLACE-WITH-THE-TOKEN"},
        "still the example's placeholder",
    ),
    "no-devices": ({"ems_edge_devices": []}, "at least one device"),
    "same-role": (
        {"ems_edge_devices": [*DEVICES, {**DEVICES[0], "name": "inverter-2"}]},
        "device roles each unique",
    ),
    "unknown-role": (
        {"ems_edge_devices": [{**DEVICES[0], "role": "fridge"}, *DEVICES[1:]]},
        "fridge",
    ),
    "undefined-bus": (
        {"ems_edge_devices": [*DEVICES[:3], {**DEVICES[3], "bus": "nowhere"}]},
        'device "bms" is on bus "nowhere", which ems_edge_buses does not define',
    ),
    "rtu-unit-0": (
        {
            "ems_edge_buses": [{"name": "site", "type": "rtu", "device": "/dev/rs485"}],
            "ems_edge_devices": [{**DEVICES[0], "unit": 0}, *DEVICES[1:]],
        },
        'device "inverter" has unit 0: unit ids are 1 to 247 on an rtu bus',
    ),
    "rtu-no-device": (
        {"ems_edge_buses": [{"name": "site", "type": "rtu"}]},
        'bus "site" (rtu) needs a device',
    ),
    "tcp-no-host": (
        {"ems_edge_buses": [{"name": "site", "type": "tcp", "port": 502}]},
        'bus "site" (tcp) needs a host',
    ),
    "sampling-0": ({"ems_edge_sampling_interval_s": 0}, "must be above 0 s"),
    "usb-id": ({"ems_edge_rs485_vendor_id": "403"}, "4 hex digits"),
    "missing-wheel": (
        {"ems_edge_wheel": "/nonexistent/ems_switchboard-0.1.0-py3-none-any.whl"},
        "an existing ems_switchboard-VERSION-....whl file on the controller",
    ),
    "bad-version": ({"ems_edge_version": "../0.1.0"}, 'ems_edge_version ("../0.1.0")'),
}
_FAILED_LINE = re.compile(
    r"^(?:fatal|failed): \[(?P<host>[^\]]+)\](?: \(item=[^)]*\))?: FAILED! => (?P<json>\{.*\})$"
    r"|^failed: \[(?P<item_host>[^\]]+)\] \(item=[^)]*\) => (?P<item_json>\{.*\})$",
    re.MULTILINE,
)
_RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=\d+\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=\d+\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def _host_vars(changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**BASE, **changes}
    return {key: value for key, value in merged.items() if value is not None} | {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
    }


@pytest.fixture(scope="module")
def preflight(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, list[str]]]:
    """One preflight run over every case: its output and each host's failure messages."""
    home = tmp_path_factory.mktemp("preflight")
    cases = {**ACCEPTED, **{name: changes for name, (changes, _) in REFUSED.items()}}
    hosts = {name: _host_vars(changes) for name, changes in cases.items()}
    inventory = home / "hosts.yml"
    inventory.write_text(json.dumps({"ems_edge": {"hosts": hosts}}, indent=2))
    done = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "--forks",
            "10",
            "--tags",
            "preflight",
            "playbook.yml",
        ],
        cwd=ANSIBLE_DIR,
        env=ansible_env(home),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = done.stdout + done.stderr
    (home / "play.log").write_text(output)
    messages: dict[str, list[str]] = {}
    for match in _FAILED_LINE.finditer(done.stdout):
        host = match["host"] or match["item_host"]
        result = json.loads(match["json"] or match["item_json"])
        messages.setdefault(host, []).append(str(result.get("msg", "")))
    return output, messages


def _recap(output: str) -> dict[str, tuple[int, int]]:
    return {m["host"]: (int(m["changed"]), int(m["failed"])) for m in _RECAP.finditer(output)}


@pytest.mark.parametrize("host", sorted(ACCEPTED))
def test_good_inventory_passes(preflight: tuple[str, dict[str, list[str]]], host: str) -> None:
    output, messages = preflight
    assert _recap(output).get(host) == (0, 0), messages.get(host, output)


@pytest.mark.parametrize("host", sorted(REFUSED))
def test_bad_inventory_is_refused_with_a_clear_message(
    preflight: tuple[str, dict[str, list[str]]], host: str
) -> None:
    output, messages = preflight
    assert _recap(output).get(host) == (0, 1), output
    expected = REFUSED[host][1]
    assert any(expected in message for message in messages.get(host, [])), messages.get(
        host, output
    )


def test_the_token_never_appears(preflight: tuple[str, dict[str, list[str]]]) -> None:
    output, _ = preflight
    assert "ems-test-token" not in output
