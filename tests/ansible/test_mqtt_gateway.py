"""The role's [mqtt] and [gateway] variables, run into the converged Debian root.

Off by default (the converged site sets none of them): turning both on renders
sections the agent's own loader accepts with the inventory's values, the MQTT
password goes to a file only the agent's user can read and nowhere else, a
value the loader refuses fails the run on the Pi and leaves the config as it
was, and turning them off again renders the config the site had before.
"""

from __future__ import annotations

import ipaddress
import secrets
import tomllib
from pathlib import Path

import pytest

from edge.config import load_config
from telemetry.homeassistant import ValueFilter
from tests.support.ansible import Converged, in_root, owner_mode, require_root_and_debootstrap

pytestmark = [pytest.mark.slow, pytest.mark.needs_root, pytest.mark.timeout(1800)]

USER = "ems-edge"
CONFIG = "etc/ems-edge/config.toml"
PASSWORD_FILE = "etc/ems-edge/mqtt-password"
CA_FILE = "etc/ems-edge/mqtt-ca.pem"


@pytest.fixture(scope="module", autouse=True)
def _root_and_debootstrap() -> None:
    require_root_and_debootstrap()


def _site_sections(password: str, ca_file: Path) -> dict[str, object]:
    return {
        "ems_edge_mqtt_enabled": True,
        "ems_edge_mqtt_url": "mqtts://broker.example.org:8884",
        "ems_edge_mqtt_username": "ems",
        "ems_edge_mqtt_password": password,
        "ems_edge_mqtt_ca_file": str(ca_file),
        "ems_edge_mqtt_base_topic": "site/ems",
        "ems_edge_mqtt_discovery_prefix": "ha",
        "ems_edge_mqtt_client_id": "ems-pi-1",
        "ems_edge_mqtt_ha_discovery": False,
        "ems_edge_mqtt_include": ["grid.*", "*_wh"],
        "ems_edge_mqtt_exclude": ["extra.bms_cell_*"],
        "ems_edge_mqtt_stale_after_s": 45,
        "ems_edge_mqtt_max_queued": 500,
        "ems_edge_gateway_enabled": True,
        "ems_edge_gateway_listen": "0.0.0.0",
        "ems_edge_gateway_port": 1503,
        "ems_edge_gateway_allow": ["192.168.1.0/24", "10.0.0.7"],
        "ems_edge_gateway_read_only": False,
        "ems_edge_gateway_max_age_s": 2.5,
        "ems_edge_gateway_max_clients": 4,
        "ems_edge_gateway_requests_per_s": 10.0,
        "ems_edge_gateway_units": {"inverter": 11},
        "ems_edge_gateway_write": [{"device": "inverter", "first": 40134, "last": 40135}],
    }


def test_mqtt_and_gateway_sections_from_the_inventory(converged: Converged) -> None:
    site = converged.site
    root = site.root
    before = (root / CONFIG).read_text()
    assert "[mqtt]" not in before
    assert "[gateway]" not in before
    assert not (root / PASSWORD_FILE).exists()

    password = f"mqtt-{secrets.token_urlsafe(18)}"
    ca = site.directory / "broker-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nEMS test CA\n-----END CERTIFICATE-----\n")
    sections = _site_sections(password, ca)
    turned_on = site.play(**sections)
    assert turned_on.returncode == 0, turned_on.output
    assert turned_on.restart_notified, turned_on.output

    # The agent's own loader reads what was rendered, with the inventory's values.
    text = (root / CONFIG).read_text()
    config = load_config(root / CONFIG)
    mqtt = config.mqtt
    assert mqtt is not None
    assert mqtt.url == "mqtts://broker.example.org:8884"
    assert mqtt.username == "ems"
    assert mqtt.password is None
    assert mqtt.password_file == Path("/", PASSWORD_FILE)
    assert mqtt.ca_file == Path("/", CA_FILE)
    assert (mqtt.topics.base, mqtt.topics.discovery_prefix) == ("site/ems", "ha")
    assert mqtt.client_id == "ems-pi-1"
    assert mqtt.ha_discovery is False
    assert mqtt.values == ValueFilter(("grid.*", "*_wh"), ("extra.bms_cell_*",))
    assert (mqtt.stale_after_s, mqtt.max_queued) == (45, 500)
    gateway = config.gateway
    assert gateway is not None
    assert (gateway.listen, gateway.port) == ("0.0.0.0", 1503)
    assert gateway.allow == (
        ipaddress.ip_network("192.168.1.0/24"),
        ipaddress.ip_network("10.0.0.7/32"),
    )
    assert gateway.read_only is False
    assert (gateway.max_age_s, gateway.max_clients, gateway.requests_per_s) == (2.5, 4, 10.0)
    assert gateway.units["inverter"] == 11
    assert gateway.units["grid-meter"] == 2  # its own unit id
    assert gateway.may_write("inverter", 40134, 2)
    assert not gateway.may_write("inverter", 40136, 1)
    # Everything else is as before: the sections were added, nothing changed.
    assert text.startswith(before)

    # The password: in a file only the agent's user reads, never in the config or the output.
    assert password not in text
    assert "password =" not in text
    assert (root / PASSWORD_FILE).read_text().strip() == password
    assert owner_mode(root, PASSWORD_FILE) == (USER, USER, "0o600")
    for output in site.outputs:
        assert password not in output
    read = in_root(root, "cat", f"/{PASSWORD_FILE}", user=USER)
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == password
    # The CA certificate was copied; the agent's group may read it.
    assert (root / CA_FILE).read_bytes() == ca.read_bytes()
    assert owner_mode(root, CA_FILE) == ("root", USER, "0o640")

    again = site.play()
    assert again.returncode == 0, again.output
    assert again.changed == 0, again.output
    assert not again.restart_notified, again.output

    # A value only the agent's loader refuses (stale_after_s under twice the
    # sampling interval) fails on the Pi, naming the key, and the config stays.
    refused = site.play(ems_edge_mqtt_stale_after_s=1)
    site.vars["ems_edge_mqtt_stale_after_s"] = 45
    assert refused.returncode != 0
    assert "mqtt.stale_after_s: must be at least twice sampling.interval_s" in refused.output
    assert (root / CONFIG).read_text() == text
    assert password not in refused.output

    # Off again: the config the site had before, and no password or CA left behind.
    for key in sections:
        del site.vars[key]
    turned_off = site.play()
    assert turned_off.returncode == 0, turned_off.output
    assert turned_off.restart_notified, turned_off.output
    assert (root / CONFIG).read_text() == before
    assert not (root / PASSWORD_FILE).exists()
    assert not (root / CA_FILE).exists()


def test_a_gateway_port_the_agent_cannot_bind_is_refused_before_anything_changes(
    converged: Converged,
) -> None:
    site = converged.site
    before = (site.root / CONFIG).read_text()
    refused = site.play(ems_edge_gateway_enabled=True, ems_edge_gateway_port=502)
    del site.vars["ems_edge_gateway_enabled"], site.vars["ems_edge_gateway_port"]
    assert refused.returncode != 0
    assert "ems_edge_gateway_port is 502 for test-pi: give 1024 to 65535" in refused.output
    assert (site.root / CONFIG).read_text() == before
    assert tomllib.loads(before).get("gateway") is None
