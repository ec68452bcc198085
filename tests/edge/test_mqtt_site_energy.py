"""The site's energy totals in Home Assistant: a real agent, simulator and Mosquitto.

The agent publishes the running totals of its readings' energy as the "site"
device; every discovery config passes Home Assistant's documented rules
(tests/support/mqtt.py), and the totals go on from where they were after the
agent is stopped and started again on the same outbox: never down, never reset.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.agent import Agent
from edge.config import EdgeConfig, parse_config
from edge.energy_totals import QUANTITIES
from edge.outbox import Outbox
from simulation.runner import SimulatedSite
from tests.edge.agent_site import OPTIONS, site_config
from tests.support.mqtt import (
    Mosquitto,
    Subscriber,
    discovery_problems,
    energy_dashboard_ready,
    subscribed,
)
from tests.support.polling import until

SITE = "agent_site_energy"
TOPIC = f"ems/{SITE}/energy/"
# Nothing listens there: the agent keeps its readings in the outbox and retries.
NO_HUB = "ws://127.0.0.1:1"


def _config(tmp_path: Path, modbus_port: int, mqtt: str) -> EdgeConfig:
    text = site_config(tmp_path, NO_HUB, modbus_port, SITE) + f"\n[mqtt]\n{mqtt}"
    return parse_config(text, base_dir=tmp_path)


def _totals(subscriber: Subscriber, since: int = 0) -> dict[str, list[float]]:
    """Each quantity's published totals, in the order received (from message ``since``)."""
    seen: dict[str, list[float]] = {}
    for message in subscriber.messages[since:]:
        if message.topic.startswith(TOPIC):
            seen.setdefault(message.topic.removeprefix(TOPIC), []).append(float(message.payload))
    return seen


def _counting(totals: dict[str, list[float]]) -> bool:
    """Every quantity published, and PV and house energy counted (the PV counter's
    register steps by 10 Wh: its first step takes a few seconds)."""
    return all(q in totals for q in QUANTITIES) and all(
        totals[q][-1] > 0 for q in ("pv_wh", "house_wh")
    )


async def test_site_totals_reach_home_assistant_and_go_on_after_a_restart(
    broker: Mosquitto, tmp_path: Path
) -> None:
    async with (
        SimulatedSite(tcp=("127.0.0.1", 0), speed=1.0) as plant,
        subscribed(broker.port, "homeassistant/#", f"ems/{SITE}/#") as subscriber,
    ):
        await _run_twice(plant.tcp_port, broker, subscriber, tmp_path)


async def _run_twice(
    modbus_port: int, broker: Mosquitto, subscriber: Subscriber, tmp_path: Path
) -> None:
    config = _config(tmp_path, modbus_port, f'url = "{broker.url}"\nstale_after_s = 5\n')
    first = Agent(config, token="unused", options=OPTIONS)
    task = asyncio.create_task(first.run(), name="test.agent.first")
    try:
        # The sunny site at 11:00: PV, export, charge and the house all count.
        await until(lambda: _counting(_totals(subscriber)), within=90)
    finally:
        first.stop()
        async with asyncio.timeout(15):
            await task
    before = _totals(subscriber)
    # Discovery: one sensor per quantity on the site's device, ready for the
    # Energy dashboard, within Home Assistant's documented rules.
    configs = {
        p["state_topic"]: (topic, p)
        for topic, p in subscriber.discovery().items()
        if p["state_topic"].startswith(TOPIC)
    }
    assert sorted(configs) == sorted(TOPIC + q for q in QUANTITIES)
    for topic, payload in configs.values():
        assert discovery_problems(topic, payload) == [], (topic, payload)
        assert energy_dashboard_ready(payload), payload
        assert payload["device_class"] == "energy"
        assert payload["state_class"] == "total_increasing"
        assert payload["unit_of_measurement"] == "Wh"
        assert payload["device"]["identifiers"] == [f"ems_{SITE}"]
        assert payload["availability"][0]["topic"] == f"ems/{SITE}/edge/status"
    assert configs[TOPIC + "import_wh"][1]["name"] == "Grid import energy"
    assert configs[TOPIC + "pv_wh"][1]["unique_id"] == f"ems_{SITE}_energy_pv_wh"
    # Published totals only grow, and are what the outbox committed.
    for quantity, values in before.items():
        assert values == sorted(values), (quantity, values)
    assert before["pv_wh"][-1] > 0
    assert before["house_wh"][-1] > 0
    async with Outbox.open(config.buffer.path, max_bytes=2**24) as outbox:
        stored = outbox.committed_totals
    assert stored is not None
    for quantity in QUANTITIES:
        assert round(stored.wh[quantity], 3) >= before[quantity][-1]

    # The agent starts again on the same outbox: the totals go on from there.
    restarted_at = len(subscriber.messages)
    second = Agent(config, token="unused", options=OPTIONS)
    task = asyncio.create_task(second.run(), name="test.agent.second")
    try:
        await until(
            lambda: _totals(subscriber, restarted_at).get("pv_wh", [0.0])[-1] > before["pv_wh"][-1],
            within=60,
        )
    finally:
        second.stop()
        async with asyncio.timeout(15):
            await task
    after = _totals(subscriber, restarted_at)
    assert sorted(after) == sorted(QUANTITIES)
    for quantity in QUANTITIES:
        values = after[quantity]
        assert values == sorted(values), (quantity, values)
        # Never a reset: the first total after the restart is at least the last before.
        assert values[0] >= before[quantity][-1], (quantity, values[0], before[quantity][-1])
        # ... and at least what the first run had committed when it stopped.
        assert values[0] >= round(stored.wh[quantity], 3), (quantity, values[0], stored)


def _house_wh(agent: Agent) -> float:
    tracker = agent.sampler.energy if agent.sampler is not None else None
    return tracker.totals.wh.get("house_wh", 0.0) if tracker is not None else 0.0


async def test_site_totals_left_out_by_the_filter_are_neither_published_nor_announced(
    broker: Mosquitto, tmp_path: Path
) -> None:
    async with (
        SimulatedSite(tcp=("127.0.0.1", 0), speed=1.0) as plant,
        subscribed(broker.port, "homeassistant/#", f"ems/{SITE}/#") as subscriber,
    ):
        config = _config(
            tmp_path, plant.tcp_port, f'url = "{broker.url}"\nexclude = ["energy.*"]\n'
        )
        agent = Agent(config, token="unused", options=OPTIONS)
        task = asyncio.create_task(agent.run(), name="test.agent")
        try:
            # The devices' own values flow, and the outbox keeps counting the totals.
            await until(lambda: subscriber.count(f"ems/{SITE}/device/") >= 50, within=60)
            await until(lambda: _house_wh(agent) > 0, within=60)
        finally:
            agent.stop()
            async with asyncio.timeout(15):
                await task
    assert not [m.topic for m in subscriber.messages if m.topic.startswith(TOPIC)]
    announced = [p["state_topic"] for p in subscriber.discovery().values()]
    assert announced
    assert not [topic for topic in announced if topic.startswith(TOPIC)]
