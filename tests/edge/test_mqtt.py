"""The agent publishes to Home Assistant over MQTT: a real agent, simulator, hub and Mosquitto.

Every discovery config the subscriber receives is checked against Home Assistant's
documented rules (tests/support/mqtt.py). The broker is killed and restarted in
the middle of a run: the agent keeps polling, buffering and uplinking, MQTT
resumes on its own, and the messages that did not fit the queue are counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.agent import Agent, AgentError
from edge.config import ConfigError, EdgeConfig, parse_config
from edge.energy_totals import QUANTITIES
from simulation.modbus_server import DeviceServer
from telemetry.redaction import redact
from tests.edge.agent_site import OPTIONS, site_config, stored
from tests.edge.hubproc import HubProcess, running_hub
from tests.support.mqtt import (
    Mosquitto,
    Subscriber,
    discovery_problems,
    energy_dashboard_ready,
    subscribed,
)
from tests.support.polling import until
from tests.tcp_proxy import CutMode, TcpProxy

PASSWORD = "mqtt-pw-never-logged"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


def mqtt_config(
    tmp_path: Path, hub: HubProcess, modbus_port: int, device_id: str, mqtt: str
) -> EdgeConfig:
    text = site_config(tmp_path, hub.url, modbus_port, device_id) + f"\n[mqtt]\n{mqtt}"
    return parse_config(text, base_dir=tmp_path)


def check_every_discovery(subscriber: Subscriber) -> dict[str, dict[str, object]]:
    configs = subscriber.discovery()
    for topic, payload in configs.items():
        assert discovery_problems(topic, payload) == [], (topic, payload)
    return configs


async def test_every_value_reaches_home_assistant_and_survives_a_broker_restart(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    broker: Mosquitto,
    tmp_path: Path,
) -> None:
    served, plant = site
    token = await asyncio.to_thread(hub.token_add, "agent_mqtt")
    config = mqtt_config(
        tmp_path,
        hub,
        served.tcp_port,
        "agent_mqtt",
        f'url = "{broker.url}"\nstale_after_s = 5\nmax_queued = 400\n',
    )
    agent = Agent(config, token=token, options=OPTIONS)
    began = datetime.now(UTC)
    async with subscribed(broker.port, "homeassistant/#", "ems/#") as subscriber:
        task = asyncio.create_task(agent.run(), name="test.agent")
        try:
            await until(lambda: subscriber.count("ems/agent_mqtt/device/") >= 300)
            # Discovery: every value announced, each config within the documented rules.
            await until(lambda: len(subscriber.discovery()) >= 20)
            configs = check_every_discovery(subscriber)
            states = {p["state_topic"] for p in configs.values()}
            published = {m.topic for m in subscriber.messages if "/device/" in m.topic}
            assert published - {"ems/agent_mqtt/edge/status"} <= states
            # The Energy dashboard's counters: grid import/export, solar yield, battery.
            by_state = {p["state_topic"]: p for p in configs.values()}
            for topic in (
                "ems/agent_mqtt/device/meter/grid/import_energy_wh",
                "ems/agent_mqtt/device/meter/grid/export_energy_wh",
                "ems/agent_mqtt/device/charger/solar/energy_total_wh",
            ):
                assert energy_dashboard_ready(by_state[topic]), by_state[topic]
            meter = by_state["ems/agent_mqtt/device/meter/grid/power_w"]
            assert meter["device"]["manufacturer"] == "Eastron"
            assert meter["device"]["identifiers"] == ["ems_agent_mqtt_meter"]
            assert meter["expire_after"] == 5
            assert meter["availability"][0]["topic"] == "ems/agent_mqtt/edge/status"
            assert subscriber.last("ems/agent_mqtt/edge/status") == "online"
            power = float(subscriber.last("ems/agent_mqtt/device/meter/grid/power_w") or "nan")
            assert power == pytest.approx(plant["grid"]["power_w"], rel=1e-3)

            # The broker dies: the agent goes on polling, buffering and uplinking.
            assert agent.sampler is not None
            assert agent.mqtt is not None
            link = agent.mqtt.link
            await asyncio.to_thread(broker.kill)
            await until(lambda: not link.connected)
            readings = agent.sampler.readings
            rows_before = len(await stored(hub, "agent_mqtt", began))
            await until(lambda: link.counters.dropped > 0, within=60)
            assert agent.sampler.readings > readings
            assert link.queued <= 400
            async with asyncio.timeout(30):
                while len(await stored(hub, "agent_mqtt", began)) <= rows_before:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)  # the hub is another process

            # Back: MQTT resumes by itself; a broker without persistence is given
            # every discovery config again, and fresh states follow.
            await asyncio.to_thread(broker.start)
            await until(lambda: link.connected, within=60)
            # A new subscriber to the new broker gets every config, retained there anew.
            async with subscribed(broker.port, "homeassistant/#", "ems/#") as fresh:
                await until(lambda: fresh.count("ems/agent_mqtt/device/") >= 50, within=60)
                await until(lambda: len(fresh.discovery()) >= len(configs), within=30)
                assert check_every_discovery(fresh).keys() == configs.keys()
            assert link.counters.connects >= 2

            # Home Assistant restarts: its birth message brings discovery again.
            announced = link.counters.announced
            await publish(broker.port, "homeassistant/status", "online")
            await until(lambda: link.counters.announced >= announced + len(configs))
        finally:
            agent.stop()
            async with asyncio.timeout(15):
                await task
        # A clean stop says offline itself (the will is for a crash).
        await until(lambda: subscriber.last("ems/agent_mqtt/edge/status") == "offline")
    rows = await stored(hub, "agent_mqtt", began)
    assert [row["seq"] for row in rows] == list(range(agent.sampler.readings))


async def publish(port: int, topic: str, payload: str) -> None:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        await client.publish(topic, payload, qos=1)


async def test_a_value_left_out_is_never_published_nor_announced(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    broker: Mosquitto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    served, _ = site
    (tmp_path / "mqtt-password").write_text(PASSWORD + "\n", encoding="utf-8")
    token = await asyncio.to_thread(hub.token_add, "agent_filter")
    config = mqtt_config(
        tmp_path,
        hub,
        served.tcp_port,
        "agent_filter",
        f'url = "{broker.url}"\nusername = "ems"\npassword_file = "mqtt-password"\n'
        'include = ["grid.*", "*_wh"]\nexclude = ["grid.phase_*"]\n',
    )
    agent = Agent(config, token=token, options=OPTIONS)
    async with subscribed(broker.port, "homeassistant/#", "ems/#") as subscriber:
        task = asyncio.create_task(agent.run(), name="test.agent")
        try:
            # The meter's grid values and energy counters, the charger's two counters,
            # and the site's six energy totals (``energy.<quantity>_wh`` matches
            # ``*_wh``), which come once the outbox has committed a reading.
            await until(lambda: len(subscriber.discovery()) >= 15)

            def every_announced_value_published() -> bool:
                states = {p["state_topic"] for p in subscriber.discovery().values()}
                return states <= set(subscriber.by_topic)

            await until(every_announced_value_published)
        finally:
            agent.stop()
            async with asyncio.timeout(15):
                await task
    topics = {m.topic for m in subscriber.messages if "/device/" in m.topic}
    names = {topic.split("/", 4)[-1] for topic in topics}
    assert names, topics
    for name in names:
        section, field = name.split("/")[-2:]
        assert section == "grid" or field.endswith("_wh"), name
        assert not field.startswith("phase_"), name
    energy = {m.topic for m in subscriber.messages if "/energy/" in m.topic}
    assert {topic.rsplit("/", 1)[-1] for topic in energy} == set(QUANTITIES)
    topics |= energy
    configs = check_every_discovery(subscriber)
    # The password went to the broker (anonymous allowed here) and into no log line.
    assert "MQTT connected" in caplog.text
    assert PASSWORD not in caplog.text
    assert redact(f"broker said {PASSWORD}") == "broker said [redacted]"
    assert {json.dumps(p["state_topic"]) for p in configs.values()} == {
        json.dumps(t) for t in topics
    }


def test_a_bad_mqtt_section_names_the_key(tmp_path: Path) -> None:
    base = site_config(tmp_path, "ws://127.0.0.1:1", 1502, "agent_bad")
    cases = {
        'url = "http://broker"': "mqtt.url: must start with mqtt:// or mqtts://",
        'url = "mqtt://u:secret@broker"': "mqtt.url: holds a password",
        'url = "mqtt://broker"\nca_file = "ca.pem"': "mqtt.ca_file: only used with an mqtts://",
        'url = "mqtt://broker"\nstale_after_s = 0': "mqtt.stale_after_s: input should be greater",
        'url = "mqtt://broker"\nbase_topic = "ems/#"': "mqtt.base_topic:",
        'url = "mqtt://broker"\ninclude = ["grid power"]': "mqtt.include[0]:",
        'url = "mqtt://broker"\npasword = "x"': "mqtt.pasword: unknown key",
        'url = "mqtt://broker"\npassword = "a"\npassword_file = "p"': "mqtt.password_file:",
    }
    for section, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse_config(base + f"\n[mqtt]\n{section}\n", base_dir=tmp_path)
        assert expected in str(caught.value), (section, str(caught.value))
    slow = base.replace("interval_s = 0.2", "interval_s = 20.0")
    with pytest.raises(ConfigError, match=r"mqtt\.stale_after_s: must be at least twice"):
        parse_config(slow + '\n[mqtt]\nurl = "mqtt://broker"\n', base_dir=tmp_path)


async def test_an_unreadable_password_file_stops_the_start_with_its_key(tmp_path: Path) -> None:
    text = site_config(tmp_path, "ws://127.0.0.1:1", 1502, "agent_pw")
    config = parse_config(
        text + '\n[mqtt]\nurl = "mqtt://127.0.0.1"\npassword_file = "missing.txt"\n',
        base_dir=tmp_path,
    )
    agent = Agent(config, token="unused", options=OPTIONS)
    with pytest.raises(AgentError, match=r"config error: mqtt\.password_file: cannot read"):
        await agent.run()


async def test_a_broker_that_never_answers_holds_up_nothing(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    broker: Mosquitto,
    tmp_path: Path,
) -> None:
    """Connections accepted and never answered (no CONNACK): the agent's pace stays its own."""
    served, _ = site
    token = await asyncio.to_thread(hub.token_add, "agent_slow")
    async with TcpProxy("127.0.0.1", broker.port) as proxy:
        config = mqtt_config(
            tmp_path,
            hub,
            served.tcp_port,
            "agent_slow",
            f'url = "mqtt://127.0.0.1:{proxy.port}"\nmax_queued = 100\n',
        )
        agent = Agent(config, token=token, options=OPTIONS)
        began = datetime.now(UTC)
        task = asyncio.create_task(agent.run(), name="test.agent")
        try:
            await until(lambda: agent.mqtt is not None and agent.mqtt.link.counters.sent > 50)
            assert agent.mqtt is not None
            assert agent.sampler is not None
            link = agent.mqtt.link
            await proxy.cut(CutMode.HOLD)  # a broker that accepts and says nothing
            await until(lambda: not link.connected)
            loop = asyncio.get_running_loop()
            start, readings = loop.time(), agent.sampler.readings
            # Connects that time out (5 s each) and back off, for longer than one of them.
            await until(lambda: link.counters.failures >= 2 and link.counters.dropped > 0, 90)
            elapsed = loop.time() - start
            taken = agent.sampler.readings - readings
            # One reading every 0.2 s all along, within a loaded machine's slack.
            assert taken >= 0.6 * elapsed / config.interval_s, (taken, elapsed)
            assert link.queued <= 100
            await proxy.restore()
            sent = link.counters.sent
            await until(lambda: link.connected, within=60)
            await until(lambda: link.counters.sent > sent + 20)
        finally:
            agent.stop()
            async with asyncio.timeout(15):
                await task
    rows = await stored(hub, "agent_slow", began)
    assert [row["seq"] for row in rows] == list(range(agent.sampler.readings))
