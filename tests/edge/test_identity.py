"""Device identity at the edge: polled over TCP loopback, into Home Assistant and the hub.

A real agent polls the simulated site (tests/edge/conftest.py: a SunSpec inverter
whose common model says "SIM-0001", an Eastron meter reporting its serial number
only, an EPEver charger whose profile reads no identity)
and publishes to a private Mosquitto; its hub is a real hub process. The
discovery configs carry the inverter's serial number, its health frame carries
its identity, and ``/api/devices`` shows it. Pollers alone: the identity is read
once per connection and again after a reconnect, and a device that refuses it
goes on being polled; a model reported as a code (the simulated Sungrow and SMA
sites) reaches the health frame by its documented name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.bus import BusConfig, BusType
from drivers.identity import DeviceIdentity
from drivers.profile import encode_map
from drivers.profiles import goodwe
from edge.agent import Agent
from edge.config import DeviceConfig, Role, parse_config
from edge.health import DeviceHealth, DeviceState
from edge.poller import BusPoller, PolledDevice
from simulation import goodwe_site
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from simulation.runner import SimulatedSite
from simulation.sites import SITES
from telemetry.backoff import BackoffPolicy
from tests.edge.agent_site import OPTIONS, START, site_config
from tests.edge.hubproc import HubProcess, running_hub
from tests.edge.test_poller import polling
from tests.support.modbus import served_bus
from tests.support.mqtt import Mosquitto, discovery_problems, subscribed
from tests.support.polling import until, until_awaited
from tests.tcp_proxy import CutMode, TcpProxy

SIM_INVERTER = DeviceIdentity("EMS Switchboard", "SimInverter", "SIM-0001", "1.0")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


def _health_of(devices: list[dict[str, Any]], device_id: str) -> dict[str, Any] | None:
    for entry in devices:
        if entry["device_id"] == device_id and entry["health"] is not None:
            return {d["name"]: d for d in entry["health"]["devices"]}
    return None


async def test_the_serial_number_reaches_home_assistant_and_the_hub(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    broker: Mosquitto,
    tmp_path: Path,
) -> None:
    served, _ = site
    token = await asyncio.to_thread(hub.token_add, "agent_identity")
    text = site_config(tmp_path, hub.url, served.tcp_port, "agent_identity")
    config = parse_config(text + f'\n[mqtt]\nurl = "{broker.url}"\n', base_dir=tmp_path)
    agent = Agent(config, token=token, options=OPTIONS)
    async with subscribed(broker.port, "homeassistant/#") as subscriber:
        task = asyncio.create_task(agent.run(), name="test.agent")
        try:

            def devices_announced() -> dict[str, dict[str, Any]]:
                found = {}
                for payload in subscriber.discovery().values():
                    device = payload["device"]
                    found[device["name"]] = device
                return found

            await until(
                lambda: (
                    {"agent_identity inverter", "agent_identity meter", "agent_identity charger"}
                    <= set(devices_announced())
                )
            )
            async with httpx.AsyncClient(timeout=10.0) as http:

                async def health() -> dict[str, Any] | None:
                    answer = await http.get(f"{hub.http}/api/devices")
                    answer.raise_for_status()
                    return _health_of(answer.json(), "agent_identity")

                async def identities_shown() -> bool:
                    devices = await health()
                    return devices is not None and all(
                        devices[name]["identity"] is not None
                        for name in ("inverter", "meter", "charger")
                    )

                await until_awaited(identities_shown)
                shown = await health()
        finally:
            agent.stop()
            async with asyncio.timeout(15):
                await task
    configs = subscriber.discovery()
    for topic, payload in configs.items():
        assert discovery_problems(topic, payload) == [], (topic, payload)
    inverter_configs = [
        p["device"] for p in configs.values() if p["device"]["name"] == "agent_identity inverter"
    ]
    assert inverter_configs
    for device in inverter_configs:
        assert device["serial_number"] == "SIM-0001"
        assert device["manufacturer"] == "EMS Switchboard"
        assert device["model"] == "SimInverter"
        assert device["sw_version"] == "1.0"
    meter = devices_announced()["agent_identity meter"]
    # The meter reports its serial number only: the catalogue's vendor and models.
    assert meter["manufacturer"] == "Eastron"
    assert meter["model"].startswith("SDM630")
    assert meter["serial_number"] == "20123456"
    assert "sw_version" not in meter
    charger = devices_announced()["agent_identity charger"]
    # The charger's profile reads no identity registers: the vendor, no serial number.
    assert charger["manufacturer"] == "EPEver"
    assert "serial_number" not in charger
    assert shown is not None
    assert shown["inverter"]["identity"] == SIM_INVERTER.as_dict()
    assert shown["meter"]["identity"] == {"manufacturer": "Eastron", "serial_number": "20123456"}
    assert shown["charger"]["identity"] == {"manufacturer": "EPEver"}


async def test_the_hub_hears_of_an_identity_read_after_the_agent_connected(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
) -> None:
    """The devices answer only once the agent is connected to its hub: the health frame
    of the inverter's first good read goes before its identity is read, and the
    identity follows in a frame of its own."""
    served, _ = site
    token = await asyncio.to_thread(hub.token_add, "agent_late_identity")
    async with TcpProxy("127.0.0.1", served.tcp_port) as proxy:
        await proxy.cut(CutMode.REFUSE)
        text = site_config(tmp_path, hub.url, proxy.port, "agent_late_identity")
        agent = Agent(parse_config(text, base_dir=tmp_path), token=token, options=OPTIONS)
        task = asyncio.create_task(agent.run(), name="test.agent")
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:

                async def shown() -> dict[str, Any] | None:
                    answer = await http.get(f"{hub.http}/api/devices")
                    answer.raise_for_status()
                    return _health_of(answer.json(), "agent_late_identity")

                async def inverter_is(state: str) -> bool:
                    devices = await shown()
                    return devices is not None and devices["inverter"]["state"] == state

                await until_awaited(lambda: inverter_is("failing"))
                await proxy.restore()
                await until_awaited(lambda: inverter_is("ok"))

                async def identity_shown() -> bool:
                    devices = await shown()
                    return devices is not None and devices["inverter"]["identity"] is not None

                await until_awaited(identity_shown)
                devices = await shown()
        finally:
            agent.stop()
            async with asyncio.timeout(15):
                await task
    assert devices is not None
    assert devices["inverter"]["state"] == "ok"
    assert devices["inverter"]["identity"] == SIM_INVERTER.as_dict()


def _device(name: str, profile: str, unit: int, bus: BusConfig) -> PolledDevice:
    config = DeviceConfig(name=name, role=Role.INVERTER, profile=profile, bus=bus.name, unit=unit)
    return PolledDevice(config, DeviceHealth(name, BackoffPolicy(0.2, 0.5)))


async def test_the_identity_is_read_once_per_connection_and_again_after_a_reconnect(
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge.poller")
    served, _ = site

    def identity_reads() -> int:
        return sum(
            1
            for record in caplog.records
            if record.getMessage().startswith("device inverter: manufacturer EMS Switchboard")
        )

    async with TcpProxy("127.0.0.1", served.tcp_port) as proxy:
        bus = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=proxy.port, timeout_s=0.5)
        inverter = _device("inverter", "sunspec", 1, bus)
        poller = BusPoller(
            bus,
            [inverter],
            interval_s=0.05,
            read_timeout_s=5.0,
            bus_backoff=BackoffPolicy(0.05, 0.1),
        )
        async with polling(poller):
            await until(lambda: inverter.health.identity.known)
            cycles = poller.cycles
            await until(lambda: poller.cycles >= cycles + 10)
            assert identity_reads() == 1  # ten more cycles on the same connection: no read
            assert inverter.health.identity == SIM_INVERTER
            # The bus is lost and opened again: another device may answer there now.
            inverter.health.identity = DeviceIdentity()
            await proxy.cut(CutMode.REFUSE)
            await until(lambda: inverter.health.state is DeviceState.FAILING)
            await proxy.restore()
            await until(lambda: inverter.health.identity.known)
            cycles = poller.cycles
            await until(lambda: poller.cycles >= cycles + 5)
    assert identity_reads() == 2
    assert inverter.health.identity == SIM_INVERTER
    assert inverter.health.state is DeviceState.OK
    report = inverter.health.report(0.0)
    assert report.identity is not None
    assert report.identity.serial_number == "SIM-0001"


@pytest.mark.parametrize(
    ("site_name", "model"),
    [("sungrow", "SH5K-20"), ("sma", "STP8.0-3AV-40")],  # codes 0x0D09 and 9347
)
async def test_a_model_code_reaches_the_health_frame_by_its_name(
    site_name: str, model: str
) -> None:
    layout = SITES[site_name]
    served = layout.devices[0]
    async with SimulatedSite(layout=layout, tcp=("127.0.0.1", 0), start=START, seed=5) as sim:
        bus = served_bus("tcp", sim)
        inverter = _device("inverter", served.profile, served.unit, bus)
        poller = BusPoller(bus, [inverter], interval_s=0.05, read_timeout_s=5.0)
        async with polling(poller):
            await until(lambda: inverter.health.identity.known)
    report = inverter.health.report(0.0).identity
    assert report is not None
    assert report.model == model
    assert report.serial_number


@pytest.fixture
async def goodwe_refusing_identity() -> AsyncIterator[DeviceServer]:
    """A GoodWe that answers its running data but refuses 35003 (no 4.1 block)."""
    sections = Plant("sunny", seed=1, start=START).state.sections()
    image = encode_map(goodwe.ET, goodwe_site.LAYOUT.devices[0].measures(sections))
    spec = DeviceSpec.for_map(goodwe.GOODWE_UNIT, image, goodwe.ET, undefined=0xFFFF)
    async with DeviceServer([spec], tcp=("127.0.0.1", 0)) as served:
        yield served


async def test_a_device_that_refuses_its_identity_is_polled_as_before(
    goodwe_refusing_identity: DeviceServer,
) -> None:
    port = goodwe_refusing_identity.tcp_port
    bus = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=port, timeout_s=0.5)
    inverter = _device("inverter", "goodwe_et", goodwe.GOODWE_UNIT, bus)
    poller = BusPoller(bus, [inverter], interval_s=0.05, read_timeout_s=5.0)
    async with polling(poller):
        await until(lambda: poller.cycles >= 5)
    assert inverter.health.state is DeviceState.OK, inverter.health.last_error
    assert inverter.health.failures == 0
    assert not inverter.health.identity.known
    assert inverter.health.report(0.0).identity is None
    assert inverter.health.snapshot is not None
    assert inverter.health.snapshot.sections["grid"]
