"""The hub relays each device behind a site to Home Assistant with the identity it reports.

A real hub in this event loop, a real device socket sending health frames (one
device with an ``identity``, one without, as an older agent sends them), a
private Mosquitto and a subscriber checking every discovery config against Home
Assistant's documented rules (tests/support/mqtt.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from hub.mqtt_bridge import HubMqttSettings
from telemetry.mqtt_link import LinkSettings
from tests.support.hub import running_hub
from tests.support.mqtt import Mosquitto, discovery_problems, subscribed
from tests.support.polling import until

IDENTITY = {
    "manufacturer": "Fronius",
    "model": "Symo GEN24 10.0 Plus",
    "serial_number": "SIM-GEN24-01",
    "firmware_version": "1.34.6-1",
}


def health(inverter_state: str, identity: dict[str, str] | None) -> str:
    inverter: dict[str, object] = {"name": "inverter", "role": "inverter", "state": inverter_state}
    if identity is not None:
        inverter["identity"] = identity
    meter = {"name": "meter", "role": "grid", "state": "ok"}  # an older agent: no identity
    return json.dumps({"type": "health", "interval_s": 1.0, "devices": [inverter, meter]})


async def test_each_device_is_announced_with_its_serial_number(
    broker: Mosquitto, tmp_path: Path
) -> None:
    settings = HubMqttSettings(
        link=LinkSettings(host="127.0.0.1", port=broker.port, client_id="hub-i")
    )
    async with (
        subscribed(broker.port, "homeassistant/#", "ems/#") as subscriber,
        running_hub(None, tmp_path / "data", mqtt=settings) as running,
    ):
        token = await running.add_token("site_i")
        device = await running.device("site_i", token)
        await device.send(health("ok", IDENTITY))
        await until(lambda: subscriber.last("ems/site_i/site/devices/meter/state") == "ok")
        await until(lambda: subscriber.last("ems/site_i/site/devices/inverter/state") == "ok")
        await until(lambda: len(subscriber.discovery()) >= 2)
        configs = subscriber.discovery()
        for topic, payload in configs.items():
            assert discovery_problems(topic, payload) == [], (topic, payload)
        by_state = {p["state_topic"]: p for p in configs.values()}
        inverter = by_state["ems/site_i/site/devices/inverter/state"]
        assert inverter["device"] == {
            "identifiers": ["ems-hub_site_i_device_inverter"],
            "name": "site_i inverter",
            "manufacturer": "Fronius",
            "model": "Symo GEN24 10.0 Plus",
            "serial_number": "SIM-GEN24-01",
            "sw_version": "1.34.6-1",
            "via_device": "ems-hub_site_i",
        }
        # Sent when the frame comes, retained: it must not expire between frames.
        assert "expire_after" not in inverter
        meter = by_state["ems/site_i/site/devices/meter/state"]
        assert meter["device"] == {
            "identifiers": ["ems-hub_site_i_device_meter"],
            "name": "site_i meter",
            "via_device": "ems-hub_site_i",
        }
        # The state changes: a new state, and no new config (the identity is the same).
        announced = len([m for m in subscriber.messages if m.topic.startswith("homeassistant/")])
        await device.send(health("failing", IDENTITY))
        await until(lambda: subscriber.last("ems/site_i/site/devices/inverter/state") == "failing")
        assert (
            len([m for m in subscriber.messages if m.topic.startswith("homeassistant/")])
            == announced
        )
        # /api/devices shows the identity too; the older agent's device has none.
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"{running.http}/api/devices")
        answer.raise_for_status()
        (site,) = [d for d in answer.json() if d["device_id"] == "site_i"]
        shown = {d["name"]: d for d in site["health"]["devices"]}
        assert shown["inverter"]["identity"] == IDENTITY
        assert shown["meter"]["identity"] is None
