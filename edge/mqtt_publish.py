"""The agent's devices in Home Assistant, over MQTT (docs/home-assistant.md).

Every sampling interval, each device's latest fresh values (the same ones the
sampler takes, edge/health.py) are checked against the wire models
(edge/compose.py) and offered to the :class:`~telemetry.mqtt_link.MqttLink`, one
message per value on its own state topic. A device that fails or goes stale
stops publishing, and Home Assistant shows each of its values unavailable once
``stale_after_s`` has passed (``expire_after``); the agent's last will marks all
of them unavailable when the agent itself goes away.

Each configured device is one device in Home Assistant, named ``<device_id>
<name>``, with the manufacturer, model, serial number and firmware the device
reports (its identity, read once per connection: drivers/identity.py), or else
the vendor and models of its catalogue profile (drivers/profiles). A value's
discovery config is sent (retained) the first time the value is seen, before its
state, and again when the device's identity changes (first read, or another
device answering after a reconnect).

The site itself is one more device, ``<device_id>``: the running totals of the
energy in its readings (edge/energy_totals.py; PV, grid import and export,
battery charge and discharge, house), so the Energy dashboard works for a
site whose devices have no energy counters. Only totals the outbox has
committed are published, so none ever goes down, across restarts too.

Nothing here awaits the broker: :meth:`EdgeMqtt.tick` only queues, so polling,
buffering and the uplink go on whatever the broker does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Final

from drivers.errors import ProfileError
from drivers.identity import DeviceIdentity
from drivers.profiles import GENERIC, get_profile
from edge.compose import Member, compose_site
from edge.energy_totals import QUANTITIES, EnergyTotals
from edge.health import DeviceHealth
from edge.mqtt_config import MqttConfig
from edge.settings import DeviceConfig
from telemetry.homeassistant import (
    SITE_ENERGY_NAMES,
    ChangeGate,
    HaDevice,
    discovery_config,
    flatten,
    object_id,
    state_text,
)
from telemetry.mqtt_link import LinkSettings, MqttLink

__all__ = ["SITE_ENERGY_NAMES", "EdgeMqtt", "ha_device", "site_ha_device"]

logger = logging.getLogger(__name__)

MANUFACTURER_GENERIC: Final = "generic register map"


def ha_device(site: str, device: DeviceConfig, identity: DeviceIdentity | None = None) -> HaDevice:
    """The Home Assistant device of a configured device: what it reports of itself
    (``identity``), else its catalogue vendor and models."""
    manufacturer: str | None = None
    model: str | None = None
    if device.profile == GENERIC:
        manufacturer = MANUFACTURER_GENERIC
        model = device.profile_file.name if device.profile_file else None
    else:
        try:
            profile = get_profile(device.profile)
        except ProfileError:
            profile = None
        if profile is not None:
            manufacturer, model = profile.vendor, profile.models
    identity = identity or DeviceIdentity()
    return HaDevice(
        identifier=object_id("ems", site, device.name),
        name=f"{site} {device.name}",
        manufacturer=identity.manufacturer or manufacturer,
        model=identity.model or model,
        serial_number=identity.serial_number or None,
        sw_version=identity.firmware_version or None,
    )


def site_ha_device(site: str) -> HaDevice:
    """The Home Assistant device of the site's energy totals."""
    return HaDevice(
        identifier=object_id("ems", site),
        name=site,
        manufacturer="EMS Switchboard",
        model="site energy totals",
    )


class EdgeMqtt:
    def __init__(
        self,
        *,
        site: str,
        config: MqttConfig,
        link: LinkSettings,
        devices: tuple[DeviceConfig, ...],
        health: Mapping[str, DeviceHealth],
        interval_s: float,
        max_age_s: float,
        monotonic: Callable[[], float],
        sw_version: str = "",
        site_energy: Callable[[], EnergyTotals | None] = lambda: None,
    ) -> None:
        self.site = site
        self.config = config
        self.devices = devices
        self.health = health
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self._monotonic = monotonic
        self._sw_version = sw_version
        # The device block each device's configs were last sent with (its identity may
        # come later than its first values, or change after a reconnect).
        self._ha_devices: dict[str, HaDevice] = {}
        self._site_energy = site_energy
        topics = config.topics
        # An unchanged value is repeated only often enough to keep it from expiring.
        self.gate = ChangeGate(max(interval_s, config.stale_after_s / 3))
        self.link = MqttLink(
            link,
            availability_topic=topics.edge_status(site),
            birth_topics=(topics.ha_status,) if config.ha_discovery else (),
            on_connected=self.gate.forget,
        )
        self._announced: set[tuple[str, str]] = set()
        self.ticks = 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.link.run(), name="mqtt.link")
            tasks.create_task(self._tick_forever(), name="mqtt.tick")

    async def _tick_forever(self) -> None:
        while True:
            now = self._monotonic()
            # On the sampler's phase (edge/sampler.py), half an interval later: the
            # pollers have stored their reads of this tick by then.
            tick = (now // self.interval_s + 1.5) * self.interval_s
            await asyncio.sleep(max(0.0, tick - now))
            self.tick(self._monotonic())

    def tick(self, now: float) -> int:
        """Queue every fresh value of every device that changed or is due for a
        refresh (:class:`~telemetry.homeassistant.ChangeGate`); the number queued."""
        self.ticks += 1
        members = []
        for device in self.devices:
            snapshot = self.health[device.name].fresh(now, self.max_age_s)
            sections = snapshot.sections if snapshot is not None else None
            members.append(Member(device.name, device.role, device.total, sections))
        composed = compose_site(members)
        config, topics, filter_ = self.config, self.config.topics, self.config.values
        by_name = {device.name: device for device in self.devices}
        queued = 0
        for name, entry in composed.devices.items():
            ha = ha_device(self.site, by_name[name], self.health[name].identity)
            if self._ha_devices.get(name) != ha:
                self._ha_devices[name] = ha
                self._announced = {(n, key) for n, key in self._announced if n != name}
            for key, value in flatten(entry):
                if not filter_.allows(key):
                    continue
                state_topic = topics.device_state(self.site, name, key)
                if config.ha_discovery and (name, key) not in self._announced:
                    self._announced.add((name, key))
                    unique_id = object_id("ems", self.site, name, key)
                    self.link.retain(
                        topics.discovery(unique_id),
                        discovery_config(
                            key=key,
                            value=value,
                            unique_id=unique_id,
                            state_topic=state_topic,
                            device=ha,
                            availability=(topics.edge_status(self.site),),
                            expire_after_s=config.stale_after_s,
                            sw_version=self._sw_version,
                        ),
                    )
                payload = state_text(value)
                if self.gate.should_send(state_topic, payload, now):
                    self.link.offer(state_topic, payload)
                    queued += 1
        return queued + self._tick_site_energy(now)

    def _tick_site_energy(self, now: float) -> int:
        """Queue the site's committed energy totals (``energy.<quantity>`` for the filter)."""
        totals = self._site_energy()
        if totals is None:
            return 0
        config, topics = self.config, self.config.topics
        queued = 0
        for quantity in QUANTITIES:
            key = f"energy.{quantity}"
            if quantity not in totals.wh or not config.values.allows(key):
                continue
            # Rounded to the mWh: a rounded non-decreasing sum is non-decreasing.
            value = round(totals.wh[quantity], 3)
            state_topic = topics.site_energy(self.site, quantity)
            if config.ha_discovery and ("", key) not in self._announced:
                self._announced.add(("", key))
                unique_id = object_id("ems", self.site, "energy", quantity)
                self.link.retain(
                    topics.discovery(unique_id),
                    discovery_config(
                        key=key,
                        value=value,
                        unique_id=unique_id,
                        state_topic=state_topic,
                        device=site_ha_device(self.site),
                        availability=(topics.edge_status(self.site),),
                        expire_after_s=config.stale_after_s,
                        sw_version=self._sw_version,
                        name=SITE_ENERGY_NAMES[quantity],
                    ),
                )
            payload = state_text(value)
            if self.gate.should_send(state_topic, payload, now):
                self.link.offer(state_topic, payload)
                queued += 1
        return queued
