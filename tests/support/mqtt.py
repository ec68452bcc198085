"""A private Mosquitto, a real subscriber, and Home Assistant's discovery rules as a table.

:class:`Mosquitto` runs Debian's ``mosquitto`` on a free loopback port with a config
of its own (no persistence: a restarted broker has forgotten every retained
message, as one without a persistence file does), so a test may kill and restart
it on the same port. :class:`Subscriber` is an aiomqtt client that records every
message it receives. :func:`discovery_problems` checks a discovery config against
:data:`DEVICE_CLASS_UNITS` and :data:`DEVICE_CLASS_STATE_CLASSES`, the rules Home
Assistant documents:

- the sensor's keys, https://www.home-assistant.io/integrations/sensor.mqtt/
  (``state_topic`` required; ``device`` only works with ``unique_id``, and needs
  ``identifiers`` or ``connections``; ``availability`` entries with a ``topic``;
  ``expire_after`` a positive number of seconds);
- device classes, their units and the state classes each allows,
  https://developers.home-assistant.io/docs/core/entity/sensor/ ("Available device
  classes", "Available state classes", "Long-term Statistics": no ``measurement``
  for ``energy``), for the classes the kit can send;
- the discovery topic, https://www.home-assistant.io/integrations/mqtt/ ("Discovery
  topic": ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``, ids of
  ``[a-zA-Z0-9_-]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiomqtt

from tests.support.ports import free_port

# developers.home-assistant.io/docs/core/entity/sensor, "Available device classes":
# the units each device class accepts (None: no unit), for every class the kit uses
# and their neighbours.
DEVICE_CLASS_UNITS: Final[dict[str, frozenset[str | None]]] = {
    "apparent_power": frozenset({"mVA", "VA", "kVA"}),
    "battery": frozenset({"%"}),
    "current": frozenset({"A", "mA"}),
    "energy": frozenset(
        {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal"}
        | {"Gcal"}
    ),
    "energy_storage": frozenset(
        {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal"}
        | {"Gcal"}
    ),
    "frequency": frozenset({"mHz", "Hz", "kHz", "MHz", "GHz"}),
    "humidity": frozenset({"%"}),
    "power": frozenset({"mW", "W", "kW", "MW", "GW", "TW"}),
    "power_factor": frozenset({"%", None}),
    "reactive_energy": frozenset({"varh", "kvarh"}),
    "reactive_power": frozenset({"mvar", "var", "kvar"}),
    "temperature": frozenset({"°C", "°F", "K"}),
    "voltage": frozenset({"V", "mV", "µV", "kV", "MV"}),
}

# The same page, "Available state classes" and "Long-term Statistics": energy is a
# total (never a measurement); the instantaneous classes are measurements.
DEVICE_CLASS_STATE_CLASSES: Final[dict[str, frozenset[str]]] = {
    "apparent_power": frozenset({"measurement"}),
    "battery": frozenset({"measurement"}),
    "current": frozenset({"measurement"}),
    "energy": frozenset({"total", "total_increasing"}),
    "energy_storage": frozenset({"measurement"}),
    "frequency": frozenset({"measurement"}),
    "humidity": frozenset({"measurement"}),
    "power": frozenset({"measurement"}),
    "power_factor": frozenset({"measurement"}),
    "reactive_energy": frozenset({"total", "total_increasing"}),
    "reactive_power": frozenset({"measurement"}),
    "temperature": frozenset({"measurement"}),
    "voltage": frozenset({"measurement"}),
}
STATE_CLASSES: Final = frozenset({"measurement", "total", "total_increasing"})
DISCOVERY_TOPIC: Final = re.compile(
    r"(?P<prefix>[^/]+(?:/[^/]+)*)/sensor/(?:[a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config"
)
# The Energy dashboard takes energy sensors in these units with these state classes.
ENERGY_DASHBOARD_UNITS: Final = frozenset({"Wh", "kWh", "MWh", "GWh", "MJ", "GJ"})


def discovery_problems(topic: str, payload: dict[str, Any]) -> list[str]:
    """Every documented rule a sensor's discovery config breaks (empty: none)."""
    problems: list[str] = []
    if DISCOVERY_TOPIC.fullmatch(topic) is None:
        problems.append(f"discovery topic {topic!r} is not <prefix>/sensor/<object_id>/config")
    state_topic = payload.get("state_topic")
    if not isinstance(state_topic, str) or not state_topic or "+" in state_topic:
        problems.append("state_topic is required and must be a topic")
    unique_id = payload.get("unique_id")
    if not isinstance(unique_id, str) or not unique_id:
        problems.append("unique_id is needed for the device registry")
    device = payload.get("device")
    if not isinstance(device, dict):
        problems.append("device is missing")
    elif not (device.get("identifiers") or device.get("connections")):
        problems.append("device needs identifiers or connections")
    device_class = payload.get("device_class")
    unit = payload.get("unit_of_measurement")
    state_class = payload.get("state_class")
    if device_class is not None:
        if device_class not in DEVICE_CLASS_UNITS:
            problems.append(f"device_class {device_class!r} is not one the table knows")
        elif unit not in DEVICE_CLASS_UNITS[device_class]:
            problems.append(f"unit {unit!r} is not allowed for device_class {device_class!r}")
        if state_class is not None and state_class not in DEVICE_CLASS_STATE_CLASSES.get(
            device_class, frozenset()
        ):
            problems.append(f"state_class {state_class!r} not allowed for {device_class!r}")
    if state_class is not None and state_class not in STATE_CLASSES:
        problems.append(f"state_class {state_class!r} is not a state class")
    expire = payload.get("expire_after")
    if expire is not None and (not isinstance(expire, int) or expire <= 0):
        problems.append("expire_after must be a positive number of seconds")
    availability = payload.get("availability", [])
    if not isinstance(availability, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("topic"), str) for entry in availability
    ):
        problems.append("availability must be a list of entries with a topic")
    if payload.get("availability_mode", "latest") not in ("all", "any", "latest"):
        problems.append("availability_mode must be all, any or latest")
    return problems


def energy_dashboard_ready(payload: dict[str, Any]) -> bool:
    """Whether the Energy dashboard accepts the sensor as grid, solar or battery energy."""
    return (
        payload.get("device_class") == "energy"
        and payload.get("unit_of_measurement") in ENERGY_DASHBOARD_UNITS
        and payload.get("state_class") in ("total", "total_increasing")
    )


class Mosquitto:
    """Debian's mosquitto on 127.0.0.1 at a free port, stoppable and restartable on it."""

    def __init__(
        self, workdir: Path, port: int | None = None, *, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.port = port or free_port()
        # (certificate chain, key): a second listener speaking TLS on tls_port.
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, within: float = 20.0) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        text = (
            # Run as root here, mosquitto would switch to its own user and could not
            # read the test's key files.
            "user root\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            f"listener {self.port} 127.0.0.1\n"
        )
        if self.tls is not None:
            cert, key = self.tls
            text += f"listener {self.tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
        self.config.write_text(text, encoding="utf-8")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')}")
            with contextlib.suppress(OSError):
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {within} s")

    def kill(self) -> None:
        """Stop it at once (SIGKILL): clients see their connection drop."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()


@dataclass
class Received:
    topic: str
    payload: str
    retain: bool


@dataclass
class Subscriber:
    """Every message on ``topics`` since connecting, kept in order and by topic."""

    url_port: int
    topics: tuple[str, ...] = ("#",)
    messages: list[Received] = field(default_factory=list)
    by_topic: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def last(self, topic: str) -> str | None:
        entries = self.by_topic.get(topic)
        return entries[-1].payload if entries else None

    def discovery(self, prefix: str = "homeassistant") -> dict[str, dict[str, Any]]:
        """The latest discovery config of each sensor topic (empty ones, deletions, left out)."""
        configs: dict[str, dict[str, Any]] = {}
        for topic, entries in self.by_topic.items():
            if topic.startswith(f"{prefix}/sensor/") and entries and entries[-1].payload:
                configs[topic] = json.loads(entries[-1].payload)
        return configs

    def count(self, prefix: str) -> int:
        return sum(1 for message in self.messages if message.topic.startswith(prefix))

    async def run(self) -> None:
        """Receive until cancelled, reconnecting while the broker is away."""
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.url_port, timeout=5) as client:
                    for topic in self.topics:
                        await client.subscribe(topic)
                    self.connected.set()
                    async for message in client.messages:
                        payload = message.payload
                        text = (
                            payload.decode("utf-8")
                            if isinstance(payload, bytes | bytearray)
                            else str(payload if payload is not None else "")
                        )
                        received = Received(str(message.topic), text, bool(message.retain))
                        self.messages.append(received)
                        self.by_topic[received.topic].append(received)
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def subscribed(port: int, *topics: str) -> AsyncIterator[Subscriber]:
    """A :class:`Subscriber` running for the block, connected before it starts."""
    subscriber = Subscriber(port, topics or ("#",))
    task = asyncio.create_task(subscriber.run(), name="test.mqtt.subscriber")
    try:
        async with asyncio.timeout(20):
            await subscriber.connected.wait()
        yield subscriber
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
