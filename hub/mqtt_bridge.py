"""A fleet in Home Assistant: the hub relays every site's live readings over MQTT.

``ems hub serve --mqtt URL`` (docs/configuration.md, "Home Assistant over MQTT")
publishes each live reading's values (its sections: the site's totals) to one
broker, with Home Assistant's MQTT discovery: one Home Assistant device per edge
site (its device id), one sensor per value. Topics and payloads are built by the
same pure module as the agent's (telemetry/homeassistant.py; docs/home-assistant.md).

Availability: every sensor lists the hub's own status topic (its last will) and
the site's at this hub (``online`` while its agent is connected to this hub,
``offline`` when it goes), so Home Assistant shows a site unavailable when either
is gone; a value not updated for ``stale_after_s`` expires. A site that connects
has its discovery configs sent again: in a cluster it may have been at another
hub, whose configs (naming that hub's topics) replaced this one's.

Each device behind a site's agent (its health frame, docs/protocol.md, "Device
health") is a Home Assistant device of its own, ``via_device`` the site's, with
the manufacturer, model, serial number and firmware it reports (its
``identity``), and one sensor: its state (``ok``, ``failing``, ``unknown``),
retained and sent when the frame comes, so it does not expire between frames.

Each site connected to this hub is also a Home Assistant ``total_increasing``
sensor per energy quantity (PV, grid import and export, battery charge and
discharge, house): its all-time sums as stored (``Storage.energy_total``, every
quarter hour of the rollups, hub/storage/energy.py, and those retention deleted,
hub/storage/pruned_energy.py), read when the site connects and every
``energy_every_s`` after, published retained when they grow, never smaller than
the last published in this process (hub/site_energy.py). They are the rollups'
sums, so they count each stored reading once, backlogs too.

Only live readings are relayed: a catch-up batch after an outage is history, and
showing it as the current state would be wrong. Nothing here awaits the broker:
:meth:`HubMqtt.reading` queues (telemetry/mqtt_link.py), so the device door's hot
path never waits on it.

Exceptions::

    MqttSettingsError    the flags or variables cannot be used; one line
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hub.device_health import SiteHealth
from hub.site_energy import SiteTotals
from hub.storage.base import StorageError
from telemetry import Reading
from telemetry.homeassistant import (
    AVAILABLE,
    NOT_AVAILABLE,
    SITE_ENERGY_NAMES,
    ChangeGate,
    HaDevice,
    Topics,
    ValueFilter,
    discovery_config,
    flatten,
    object_id,
    state_text,
)
from telemetry.mqtt_link import LinkSettings, MqttLink, parse_broker_url
from telemetry.redaction import register_secret

if TYPE_CHECKING:
    from hub.storage.base import Storage

__all__ = ["HubMqtt", "HubMqttSettings", "MqttSettingsError", "mqtt_settings"]

logger = logging.getLogger(__name__)

URL_ENV: Final = "EMS_MQTT_URL"
PASSWORD_ENV: Final = "EMS_MQTT_PASSWORD"
CA_FILE_ENV: Final = "EMS_MQTT_CA_FILE"
CLIENT_ID_ENV: Final = "EMS_MQTT_CLIENT_ID"
SECTIONS: Final = ("inverter", "grid", "solar", "battery", "extra")
# Every unique_id of the hub's sensors starts with this; the agent's start with "ems_".
ID_PREFIX: Final = "ems-hub"
STOP_TRIES: Final = 15  # 0.2 s each: 3 s for the link to say offline and stop


class MqttSettingsError(Exception):
    """``--mqtt`` and its companions cannot be used; the message is one line."""


@dataclass(frozen=True, slots=True)
class HubMqttSettings:
    link: LinkSettings
    topics: Topics = field(default_factory=Topics)
    ha_discovery: bool = True
    values: ValueFilter = field(default_factory=ValueFilter)
    stale_after_s: int = 30
    # How often each connected site's energy totals are read from storage (and at connect).
    energy_every_s: float = 60.0


def mqtt_settings(
    url: str | None,
    *,
    password_file: str | None = None,
    ca_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> HubMqttSettings | None:
    """The settings of ``--mqtt URL`` (else ``$EMS_MQTT_URL``); None: no MQTT.

    The password: ``--mqtt-password-file``, else ``$EMS_MQTT_PASSWORD``; registered
    for redaction (telemetry/redaction.py) before anything could log it.
    """
    env = os.environ if environ is None else environ
    url = url or env.get(URL_ENV, "").strip() or None
    if url is None:
        return None
    try:
        broker = parse_broker_url(url)
    except ValueError as err:
        raise MqttSettingsError(f"--mqtt: {err}") from None
    password = env.get(PASSWORD_ENV, "").strip() or None
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise MqttSettingsError(f"--mqtt-password-file: cannot read it: {err}") from err
        if not password:
            raise MqttSettingsError(f"--mqtt-password-file: {password_file} is empty")
    register_secret(password)
    ca = ca_file or env.get(CA_FILE_ENV, "").strip() or None
    if ca is not None and not broker.tls:
        raise MqttSettingsError("--mqtt-ca-file: only used with an mqtts:// broker")
    return HubMqttSettings(
        link=LinkSettings(
            host=broker.host,
            port=broker.port,
            tls=broker.tls,
            ca_file=Path(ca) if ca else None,
            username=broker.username,
            password=password,
            # Stable across restarts (the hub's status topic is named after it), distinct
            # per host: two hubs with one client id would take turns knocking each other off.
            client_id=env.get(CLIENT_ID_ENV, "").strip() or f"ems-hub-{socket.gethostname()}",
        )
    )


class HubMqtt:
    """The hub's side of Home Assistant over MQTT (module docstring)."""

    def __init__(self, settings: HubMqttSettings, storage: Storage | None = None) -> None:
        self.settings = settings
        # Where the sites' energy totals are read; None: none are published.
        self.storage = storage
        topics = settings.topics
        self.availability = topics.hub_status(settings.link.client_id)
        # An unchanged value is repeated only often enough to keep it from expiring.
        self.gate = ChangeGate(settings.stale_after_s / 3)
        self.link = MqttLink(
            settings.link,
            availability_topic=self.availability,
            birth_topics=(topics.ha_status,) if settings.ha_discovery else (),
            on_connected=self.gate.forget,
        )
        self._announced: set[tuple[str, str]] = set()
        # The device block each (site, device)'s state sensor was announced with.
        self._device_blocks: dict[tuple[str, str], HaDevice] = {}
        self._present: set[str] = set()  # sites whose agent is connected to this hub
        self._totals = SiteTotals()
        self._energy_due = asyncio.Event()  # a site connected: read totals now
        self._held_warned: set[str] = set()
        self._storage_failing = False

    def _site_device(self, site: str) -> HaDevice:
        """The Home Assistant device of a site: its values and its energy totals."""
        return HaDevice(
            identifier=object_id(ID_PREFIX, site),
            name=site,
            manufacturer="EMS Switchboard",
            model="edge site",
        )

    def _availability(self, site: str) -> tuple[str, str]:
        """The hub's status topic and the site's at this hub: both must say online."""
        return self.availability, self.settings.topics.site_status(
            self.settings.link.client_id, site
        )

    async def run(self, stopping: asyncio.Event) -> None:
        """Keep the link up until ``stopping``; then say offline and close."""
        link = asyncio.create_task(self.link.run(), name="hub.mqtt.link")
        energy = asyncio.create_task(self._energy_forever(), name="hub.mqtt.energy")
        try:
            await stopping.wait()
        finally:
            energy.cancel()
            await asyncio.wait({energy})
            if not energy.cancelled() and (failure := energy.exception()) is not None:
                logger.error("the energy totals stopped", exc_info=failure)
            # Cancelled again while it runs: the MQTT client can swallow one cancel
            # (telemetry/mqtt_link.py, _raise_if_cancelled); bounded, so SIGTERM exits.
            for _ in range(STOP_TRIES):
                link.cancel()
                done, _ = await asyncio.wait({link}, timeout=0.2)
                if done:
                    break
            else:
                logger.error("the MQTT link did not stop in time")

    def presence(self, site: str, online: bool) -> None:
        """The site's agent connected to this hub (True) or went away (False)."""
        client_id = self.settings.link.client_id
        self.link.retain(
            self.settings.topics.site_status(client_id, site),
            AVAILABLE if online else NOT_AVAILABLE,
        )
        if not online:
            self._present.discard(site)
        else:
            self._present.add(site)
            self._energy_due.set()
            # Announce the site's sensors again with this hub's topics: in a cluster the
            # site may have been at another hub since, whose configs replaced ours.
            self._announced = {(s, key) for s, key in self._announced if s != site}
            self._device_blocks = {k: v for k, v in self._device_blocks.items() if k[0] != site}

    def health(self, site: str, health: SiteHealth) -> None:
        """Each device of the site's health frame: its state, announced with its identity."""
        settings, topics = self.settings, self.settings.topics
        for device in health.devices:
            identity = dict(device.identity)
            block = HaDevice(
                identifier=object_id(ID_PREFIX, site, "device", device.name),
                name=f"{site} {device.name}",
                manufacturer=identity.get("manufacturer"),
                model=identity.get("model"),
                serial_number=identity.get("serial_number"),
                sw_version=identity.get("firmware_version"),
                via_device=object_id(ID_PREFIX, site),
            )
            state_topic = topics.site_device_state(site, device.name)
            if settings.ha_discovery and self._device_blocks.get((site, device.name)) != block:
                self._device_blocks[(site, device.name)] = block
                unique_id = object_id(ID_PREFIX, site, "device", device.name, "state")
                self.link.retain(
                    topics.discovery(unique_id),
                    discovery_config(
                        key="state",
                        value=device.state.value,
                        unique_id=unique_id,
                        state_topic=state_topic,
                        device=block,
                        availability=self._availability(site),
                        expire_after_s=None,  # sent on change only, retained
                    ),
                    again=True,
                )
            self.link.retain(state_topic, device.state.value)

    def reading(self, site: str, reading: Reading) -> int:
        """Queue a live reading's values that changed or are due for a refresh."""
        settings, topics = self.settings, self.settings.topics
        now = time.monotonic()
        sections: dict[str, Any] = {}
        for name in SECTIONS:
            part = getattr(reading, name)
            if part is None:
                continue
            sections[name] = part if isinstance(part, dict) else part.model_dump(exclude_none=True)
        queued = 0
        for key, value in flatten(sections):
            if not settings.values.allows(key):
                continue
            state_topic = topics.site_state(site, key)
            self._announce(
                site,
                key,
                value,
                object_id(ID_PREFIX, site, key),
                expire_after_s=settings.stale_after_s,
            )
            payload = state_text(value)
            if self.gate.should_send(state_topic, payload, now):
                self.link.offer(state_topic, payload)
                queued += 1
        return queued

    def _announce(
        self,
        site: str,
        key: str,
        value: float | str,
        unique_id: str,
        *,
        expire_after_s: int | None,
        name: str | None = None,
    ) -> None:
        """The discovery config of a site's value ``key``, once per connection of the site
        (retained, and sent again: the site has (re)connected, ours may have been replaced)."""
        if not self.settings.ha_discovery or (site, key) in self._announced:
            return
        self._announced.add((site, key))
        topics = self.settings.topics
        self.link.retain(
            topics.discovery(unique_id),
            discovery_config(
                key=key,
                value=value,
                unique_id=unique_id,
                state_topic=topics.site_state(site, key),
                device=self._site_device(site),
                availability=self._availability(site),
                expire_after_s=expire_after_s,
                name=name,
            ),
            again=True,
        )

    async def _energy_forever(self) -> None:
        """Publish the connected sites' totals when one connects and every ``energy_every_s``."""
        if self.storage is None:
            return
        while True:
            self._energy_due.clear()
            await self.publish_energy()
            try:
                async with asyncio.timeout(self.settings.energy_every_s):
                    await self._energy_due.wait()
            except TimeoutError:
                pass

    async def publish_energy(self) -> int:
        """Read each connected site's all-time energy from storage and queue its totals
        (retained: sent when they change, and again on each connection); the number of
        totals read. Storage down: nothing is published until it answers again."""
        if self.storage is None:
            return 0
        settings, topics = self.settings, self.settings.topics
        published = 0
        for site in sorted(self._present):
            try:
                sums = await self.storage.energy_total(site)
            except StorageError as err:
                if not self._storage_failing:
                    logger.warning("energy totals not read for MQTT: %s", err)
                self._storage_failing = True
                return published
            if self._storage_failing:
                logger.info("energy totals read for MQTT again")
                self._storage_failing = False
            if site not in self._present:  # it left while we read: its status says offline
                continue
            totals = self._totals.update(site, sums)
            if totals.held and site not in self._held_warned:
                self._held_warned.add(site)
                logger.warning(
                    "site %s: stored energy of %s below the total published: holding it "
                    "(a database restored from an older backup?)",
                    site,
                    ", ".join(totals.held),
                )
            for quantity, value in totals.wh.items():
                key = f"energy.{quantity}"
                if not settings.values.allows(key):
                    continue
                # Under the hub's own topics for the site: the agent publishes its own
                # totals (counted since its outbox was made) on Topics.site_energy.
                self._announce(
                    site,
                    key,
                    value,
                    object_id(ID_PREFIX, site, "energy", quantity),
                    expire_after_s=None,  # retained, sent when it grows
                    name=SITE_ENERGY_NAMES[quantity],
                )
                self.link.retain(topics.site_state(site, key), state_text(value))
                published += 1
        return published
