"""``ems hub serve --mqtt``: every site's live readings to Home Assistant, against a real broker.

A real hub in this event loop, real device sockets, a private Mosquitto killed and
restarted in the middle, and a real subscriber that checks every discovery config
against Home Assistant's documented rules (tests/support/mqtt.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.mqtt_bridge import HubMqttSettings, MqttSettingsError, mqtt_settings
from telemetry.mqtt_link import LinkSettings
from telemetry.redaction import redact
from tests.support.hub import reading, recv_ack_seqs, running_hub
from tests.support.mqtt import (
    Mosquitto,
    Subscriber,
    discovery_problems,
    energy_dashboard_ready,
    subscribed,
)
from tests.support.polling import until


def live(seq: int, **extra: object) -> str:
    body = reading(seq, datetime.now(UTC), **extra)
    body["grid"].update(import_energy_wh=1000.0 + seq, export_energy_wh=500.0)
    body["solar"] = {"pv_power_w": 900.0, "energy_total_wh": 7000.0 + seq}
    body["extra"] = {"battery_charge_total_wh": 300.0, "battery_discharge_total_wh": 200.0}
    return json.dumps(body)


async def test_sites_reach_home_assistant_through_a_broker_restart(
    broker: Mosquitto, tmp_path: Path
) -> None:
    settings = HubMqttSettings(
        link=LinkSettings(host="127.0.0.1", port=broker.port, client_id="hub-a", max_queued=20),
        stale_after_s=10,
    )
    async with subscribed(broker.port, "homeassistant/#", "ems/#") as subscriber:
        async with running_hub(None, tmp_path / "data", mqtt=settings) as running:
            assert running.hub._mqtt is not None
            link = running.hub._mqtt.link
            await until(lambda: link.connected)
            token = await running.add_token("site_a")
            device = await running.device("site_a", token)
            for seq in range(3):
                await device.send(live(seq))
            await recv_ack_seqs(device, {0, 1, 2})
            await until(lambda: subscriber.last("ems/site_a/site/grid/power_w") == "102.0")
            await until(lambda: len(subscriber.discovery()) >= 9)
            configs = subscriber.discovery()
            for topic, payload in configs.items():
                assert discovery_problems(topic, payload) == [], (topic, payload)
            by_state = {payload["state_topic"]: payload for payload in configs.values()}
            for key in (
                "grid/import_energy_wh",
                "grid/export_energy_wh",
                "solar/energy_total_wh",
                "extra/battery_charge_total_wh",
                "extra/battery_discharge_total_wh",
            ):
                assert energy_dashboard_ready(by_state[f"ems/site_a/site/{key}"]), key
            power = by_state["ems/site_a/site/grid/power_w"]
            assert power["device"] == {
                "identifiers": ["ems-hub_site_a"],
                "name": "site_a",
                "manufacturer": "EMS Switchboard",
                "model": "edge site",
            }
            assert [a["topic"] for a in power["availability"]] == [
                "ems/hub/hub-a/status",
                "ems/hub/hub-a/site/site_a/status",
            ]
            assert power["availability_mode"] == "all"
            assert subscriber.last("ems/hub/hub-a/status") == "online"
            await until(lambda: subscriber.last("ems/hub/hub-a/site/site_a/status") == "online")

            # The broker dies: the hub goes on acking and storing; MQTT drops the oldest, counted.
            await asyncio.to_thread(broker.kill)
            await until(lambda: not link.connected)
            for seq in range(3, 40):
                await device.send(live(seq))
            await recv_ack_seqs(device, set(range(3, 40)))
            assert len(await running.stored("site_a")) == 40
            assert link.counters.dropped > 0
            assert link.queued <= 20

            # Back: the link reconnects, the discovery configs and the site's status are
            # retained on the new broker again, and new values flow.
            await asyncio.to_thread(broker.start)
            await until(lambda: link.connected, within=60)
            async with subscribed(broker.port, "homeassistant/#", "ems/#") as fresh:
                await until(lambda: len(fresh.discovery()) >= len(configs), within=30)
                await until(lambda: fresh.last("ems/hub/hub-a/site/site_a/status") == "online")
                await device.send(live(40))
                await until(lambda: fresh.last("ems/site_a/site/grid/power_w") == "140.0")
                # The site goes away: Home Assistant hears it at once.
                await device.close()
                await until(lambda: fresh.last("ems/hub/hub-a/site/site_a/status") == "offline")
                # It comes back: its sensors are announced again with this hub's topics
                # (in a cluster it may have been at another hub meanwhile).
                announced = link.counters.announced
                device = await running.device("site_a", token)
                await device.send(live(41))
                await until(lambda: fresh.last("ems/hub/hub-a/site/site_a/status") == "online")
                await until(lambda: link.counters.announced >= announced + len(configs) + 1)
        # The hub stopped cleanly: it said offline itself.
        await until(lambda: subscriber.last("ems/hub/hub-a/status") == "offline")


async def test_batches_are_history_and_are_not_relayed(broker: Mosquitto, tmp_path: Path) -> None:
    settings = HubMqttSettings(link=LinkSettings(host="127.0.0.1", port=broker.port))
    async with (
        running_hub(None, tmp_path / "data", mqtt=settings) as running,
        subscribed(broker.port, "ems/#") as subscriber,
    ):
        token = await running.add_token("site_b")
        device = await running.device("site_b", token)
        batch = [reading(seq) for seq in range(5)]
        await device.send(json.dumps({"type": "batch", "items": batch}))
        await recv_ack_seqs(device, set(range(5)))
        await device.send(live(5))
        await recv_ack_seqs(device, {5})
        await until(lambda: subscriber.last("ems/site_b/site/grid/power_w") == "105.0")
        values = [m.payload for m in subscriber.messages if m.topic.endswith("grid/power_w")]
        assert values == ["105.0"]


QUANTITIES = ("pv_wh", "import_wh", "export_wh", "charge_wh", "discharge_wh", "house_wh")
ENERGY_NAMES = {
    "pv_wh": "PV energy",
    "import_wh": "Grid import energy",
    "export_wh": "Grid export energy",
    "charge_wh": "Battery charge energy",
    "discharge_wh": "Battery discharge energy",
    "house_wh": "House energy",
}


def with_energy(seq: int, ts: datetime, wh: dict[str, float]) -> dict[str, object]:
    """A reading carrying its site's energy since the one before (docs/protocol.md, "Energy")."""
    return reading(seq, ts, energy={"span_s": 1.0, "complete": True, **wh})


def increments(seq: int) -> dict[str, float]:
    # Binary fractions: their sums are exact, so the hand sum is the stored sum.
    return {
        "pv_wh": 1.25 + seq,
        "import_wh": 0.5,
        "export_wh": 0.125 * seq,
        "charge_wh": 0.25,
        "discharge_wh": 0.0,
        "house_wh": 2.0 + 0.5 * seq,
    }


async def test_each_sites_stored_energy_totals_reach_home_assistant_and_only_grow(
    broker: Mosquitto, tmp_path: Path
) -> None:
    settings = HubMqttSettings(
        link=LinkSettings(host="127.0.0.1", port=broker.port, client_id="hub-e"),
        energy_every_s=0.3,
    )
    sent: dict[str, float] = dict.fromkeys(QUANTITIES, 0.0)

    def totals_seen(subscriber: Subscriber) -> dict[str, str | None]:
        return {q: subscriber.last(f"ems/site_e/site/energy/{q}") for q in QUANTITIES}

    def expected() -> dict[str, str | None]:
        return {q: json.dumps(value) for q, value in sent.items()}

    async with (
        subscribed(broker.port, "homeassistant/#", "ems/#") as subscriber,
        running_hub(None, tmp_path / "data", mqtt=settings) as running,
    ):
        token = await running.add_token("site_e")
        device = await running.device("site_e", token)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
        for seq in range(3):
            wh = increments(seq)
            await device.send(json.dumps(with_energy(seq, start + timedelta(seconds=seq), wh)))
            for q, value in wh.items():
                sent[q] += value
        await recv_ack_seqs(device, {0, 1, 2})
        await until(lambda: totals_seen(subscriber) == expected())
        assert sent["pv_wh"] == 6.75  # 1.25 + 2.25 + 3.25, by hand

        # One sensor per quantity on the site's device, by Home Assistant's rules, ready
        # for the Energy dashboard, retained without expiry: it changes only when it grows.
        configs = {
            topic: payload
            for topic, payload in subscriber.discovery().items()
            if "_energy_" in topic and payload["state_topic"].startswith("ems/site_e/site/energy/")
        }
        assert sorted(configs) == sorted(
            f"homeassistant/sensor/ems-hub_site_e_energy_{q}/config" for q in QUANTITIES
        )
        for topic, config in configs.items():
            assert discovery_problems(topic, config) == [], (topic, config)
            assert energy_dashboard_ready(config), topic
            quantity = config["state_topic"].rsplit("/", 1)[1]
            assert config["name"] == ENERGY_NAMES[quantity]
            assert config["state_class"] == "total_increasing"
            assert "expire_after" not in config
            assert config["device"]["identifiers"] == ["ems-hub_site_e"]
            assert [a["topic"] for a in config["availability"]] == [
                "ems/hub/hub-e/status",
                "ems/hub/hub-e/site/site_e/status",
            ]
        # What Home Assistant gets is what the hub stored.
        stored = await running.storage.energy_total("site_e")
        assert stored is not None
        assert dict(zip(QUANTITIES, stored.quantities, strict=True)) == sent

        # More live readings, and a backlog of older ones in a batch: the totals grow
        # by exactly their energy; a batch sent again adds nothing.
        for seq in range(3, 5):
            wh = increments(seq)
            await device.send(json.dumps(with_energy(seq, start + timedelta(seconds=seq), wh)))
            for q, value in wh.items():
                sent[q] += value
        backlog = []
        for seq in range(10, 14):
            wh = increments(seq)
            backlog.append(with_energy(seq, start - timedelta(days=2, seconds=-seq), wh))
            for q, value in wh.items():
                sent[q] += value
        await device.send(json.dumps({"type": "batch", "items": backlog}))
        await recv_ack_seqs(device, {3, 4, 10, 11, 12, 13})
        await device.send(json.dumps({"type": "batch", "items": backlog}))
        await recv_ack_seqs(device, {10, 11, 12, 13})
        await until(lambda: totals_seen(subscriber) == expected())
        await asyncio.sleep(1.0)  # a few more rounds: nothing counted twice
        assert totals_seen(subscriber) == expected()
        for q in QUANTITIES:
            values = [float(m.payload) for m in subscriber.by_topic[f"ems/site_e/site/energy/{q}"]]
            assert values == sorted(values), (q, values)
        # Retained: a Home Assistant starting now reads the totals at once.
        async with subscribed(broker.port, "ems/site_e/site/energy/#") as late:
            await until(lambda: totals_seen(late) == expected())
            assert all(m.retain for m in late.messages)
        # The agent's own totals' topics are the agent's: the hub publishes none there.
        assert not [m for m in subscriber.messages if m.topic.startswith("ems/site_e/energy/")]


def test_the_flags_say_what_is_wrong(tmp_path: Path) -> None:
    assert mqtt_settings(None, environ={}) is None
    with pytest.raises(MqttSettingsError, match="--mqtt: must start with mqtt://"):
        mqtt_settings("redis://x", environ={})
    with pytest.raises(MqttSettingsError, match="--mqtt: holds a password"):
        mqtt_settings("mqtt://u:p@x", environ={})
    with pytest.raises(MqttSettingsError, match="--mqtt-ca-file: only used with an mqtts"):
        mqtt_settings("mqtt://x", ca_file="ca.pem", environ={})
    with pytest.raises(MqttSettingsError, match="--mqtt-password-file: cannot read"):
        mqtt_settings("mqtt://x", password_file=str(tmp_path / "none"), environ={})
    secret = tmp_path / "pw"
    secret.write_text("hub-mqtt-password-1\n", encoding="utf-8")
    settings = mqtt_settings("mqtts://ha@broker", password_file=str(secret), environ={})
    assert settings is not None
    link = settings.link
    assert (link.host, link.port, link.tls, link.username) == ("broker", 8883, True, "ha")
    assert link.password == "hub-mqtt-password-1"
    assert redact("said hub-mqtt-password-1") == "said [redacted]"
    from_env = mqtt_settings(
        None, environ={"EMS_MQTT_URL": "mqtt://b", "EMS_MQTT_PASSWORD": "env-password-2"}
    )
    assert from_env is not None
    assert from_env.link.password == "env-password-2"


def test_a_bad_mqtt_flag_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "EMS_DATA_DIR": str(tmp_path)}
    env.pop("EMS_MQTT_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "ems", "hub", "serve", "--mqtt", "http://broker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "ems: --mqtt: must start with mqtt:// or mqtts:// (got 'http')"
    )
