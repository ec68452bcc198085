"""Home Assistant over MQTT: topics, discovery configs and state payloads (pure).

Both the edge agent (edge/mqtt_publish.py) and the hub (hub/mqtt_bridge.py) publish
readings to an MQTT broker for Home Assistant; this module is what they share, and it
does no I/O: values in, topics and JSON text out (docs/home-assistant.md).

Every value is one sensor entity with its own state topic and a retained discovery
config, as Home Assistant's MQTT discovery documents it
(https://www.home-assistant.io/integrations/mqtt/, "MQTT Discovery": the topic
``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``, ids of
``[a-zA-Z0-9_-]``, "best practice ... set <object_id> to unique_id and omit the
<node_id>"). The sensor's keys are those of
https://www.home-assistant.io/integrations/sensor.mqtt/ (``state_topic`` required;
``device`` only with ``unique_id``; ``availability``; ``expire_after``), and its
``device_class``, ``unit_of_measurement`` and ``state_class`` follow the sensor entity
rules of https://developers.home-assistant.io/docs/core/entity/sensor/ (the units each
device class accepts; ``energy`` is a total, never a ``measurement``).

The kind of a value comes from its name's unit suffix, the protocol's convention
(docs/protocol.md, "A reading": units are in the names): ``_w`` power in W, ``_wh``
an energy counter in Wh (``total_increasing``, which the Energy dashboard takes as
grid import/export, solar production and battery charge/discharge), ``_v``, ``_a``,
``_hz``, ``_c``, ``_pct``. A name with no known suffix is a plain number.
"""

from __future__ import annotations

import enum
import fnmatch
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "AVAILABLE",
    "NOT_AVAILABLE",
    "SITE_ENERGY_NAMES",
    "ChangeGate",
    "HaDevice",
    "Kind",
    "StateClass",
    "Topics",
    "ValueFilter",
    "discovery_config",
    "entity_name",
    "flatten",
    "kind_of",
    "object_id",
    "state_text",
]

AVAILABLE: Final = "online"
NOT_AVAILABLE: Final = "offline"
# What Home Assistant publishes on <discovery_prefix>/status when it starts (its
# "birth message", https://www.home-assistant.io/integrations/mqtt/): discovery is sent again.
HA_ONLINE: Final = "online"
ORIGIN: Final = "EMS Switchboard"
# The entity names of a site's energy totals (docs/protocol.md, "Energy";
# docs/home-assistant.md, "The site's energy"), the agent's and the hub's alike.
SITE_ENERGY_NAMES: Final = {
    "pv_wh": "PV energy",
    "import_wh": "Grid import energy",
    "export_wh": "Grid export energy",
    "charge_wh": "Battery charge energy",
    "discharge_wh": "Battery discharge energy",
    "house_wh": "House energy",
}

_ID_UNSAFE: Final = re.compile(r"[^a-zA-Z0-9_-]")
# A topic level must not hold the MQTT wildcards or the level separator (MQTT 3.1.1, 4.7).
_TOPIC_UNSAFE: Final = re.compile(r"[/+#\x00]")


class StateClass(enum.StrEnum):
    MEASUREMENT = "measurement"
    TOTAL = "total"
    TOTAL_INCREASING = "total_increasing"


@dataclass(frozen=True, slots=True)
class Kind:
    """How Home Assistant should read a value: its device class, unit and state class."""

    device_class: str | None
    unit: str | None
    state_class: StateClass | None


_MEASURED = StateClass.MEASUREMENT
TEXT: Final = Kind(None, None, None)  # a state name ("charging"): no unit, no statistics
PLAIN: Final = Kind(None, None, _MEASURED)  # a number of unknown unit (a cycle count)

# By the end of a field's name; the first match wins, so longer suffixes come first.
_SUFFIXES: Final[tuple[tuple[str, Kind], ...]] = (
    # A rating or a capacity is stored energy, not a counter (energy_storage is a
    # measurement, https://developers.home-assistant.io/docs/core/entity/sensor/).
    ("_rated_wh", Kind("energy_storage", "Wh", _MEASURED)),
    ("capacity_wh", Kind("energy_storage", "Wh", _MEASURED)),
    ("_varh", Kind("reactive_energy", "varh", StateClass.TOTAL_INCREASING)),
    ("_wh", Kind("energy", "Wh", StateClass.TOTAL_INCREASING)),
    ("_var", Kind("reactive_power", "var", _MEASURED)),
    ("_w", Kind("power", "W", _MEASURED)),
    ("_v", Kind("voltage", "V", _MEASURED)),
    ("_ah", Kind(None, "Ah", _MEASURED)),  # no device class measures charge
    ("_a", Kind("current", "A", _MEASURED)),
    ("_hz", Kind("frequency", "Hz", _MEASURED)),
    ("_c", Kind("temperature", "°C", _MEASURED)),
    ("soc_pct", Kind("battery", "%", _MEASURED)),
    ("_pct", Kind(None, "%", _MEASURED)),
    ("power_factor", Kind("power_factor", None, _MEASURED)),
)
_UNIT_WORDS: Final = ("wh", "varh", "var", "w", "v", "ah", "a", "hz", "c", "pct")


def kind_of(key: str, value: object) -> Kind:
    """The kind of the value named ``key`` (``grid.import_energy_wh``)."""
    if isinstance(value, str):
        return TEXT
    name = key.rsplit(".", 1)[-1]
    for suffix, kind in _SUFFIXES:
        if name.endswith(suffix):
            return kind
    return PLAIN


def flatten(sections: Mapping[str, Any]) -> Iterator[tuple[str, float | str]]:
    """Each value of a reading's sections as ``(section.field, value)``.

    A list (``phase_voltage_v``) gives one value per phase, its number before the
    unit: ``grid.phase_voltage_l1_v``. Booleans and anything else not a number or a
    text are left out (``role`` and ``total`` of a device entry).
    """
    for section, fields in sections.items():
        if not isinstance(fields, Mapping):
            continue
        for name, value in fields.items():
            key = f"{section}.{name}"
            if isinstance(value, list):
                stem, _, unit = name.rpartition("_")
                for index, item in enumerate(value, start=1):
                    if _is_number(item):
                        yield f"{section}.{stem}_l{index}_{unit}", float(item)
            elif _is_number(value):
                yield key, float(value)
            elif isinstance(value, str):
                yield key, value


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def state_text(value: float | str) -> str:
    """The state payload: a number as JSON writes it (``230.5``), or the text."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def entity_name(key: str) -> str:
    """A name people read: ``grid.import_energy_wh`` -> ``Grid import energy``."""
    section, _, name = key.rpartition(".")
    words = name.split("_")
    if len(words) > 1 and words[-1] in _UNIT_WORDS:
        words = words[:-1]
    text = " ".join(words)
    if section and section != "extra":
        text = f"{section} {text}"
    return text[:1].upper() + text[1:]


def object_id(*parts: str) -> str:
    """An id of ``[a-zA-Z0-9_-]`` from ``parts`` (a discovery topic level, a unique_id)."""
    return _ID_UNSAFE.sub("_", "_".join(parts))


def topic_level(text: str) -> str:
    """``text`` made safe as one topic level."""
    return _TOPIC_UNSAFE.sub("_", text) or "_"


@dataclass(frozen=True, slots=True)
class ValueFilter:
    """Which values are published: ``include`` (none: all), then minus ``exclude``.

    Patterns are shell-style (``fnmatch``) against ``section.field``: ``grid.power_w``,
    ``grid.*``, ``*_wh``, ``extra.*``; a pattern without a dot also matches the
    field's name alone (``soc_pct``).
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def allows(self, key: str) -> bool:
        if self.include and not _matches(key, self.include):
            return False
        return not _matches(key, self.exclude)


def _matches(key: str, patterns: Iterable[str]) -> bool:
    name = key.rsplit(".", 1)[-1]
    for pattern in patterns:
        if fnmatch.fnmatchcase(key, pattern):
            return True
        if "." not in pattern and fnmatch.fnmatchcase(name, pattern):
            return True
    return False


@dataclass(frozen=True, slots=True)
class HaDevice:
    """A device in Home Assistant's device registry, as the discovery ``device`` map says it."""

    identifier: str
    name: str
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    via_device: str | None = None
    sw_version: str | None = None  # the device's firmware (not ours: that is ``origin``)

    def payload(self) -> dict[str, Any]:
        device: dict[str, Any] = {"identifiers": [self.identifier], "name": self.name}
        if self.manufacturer:
            device["manufacturer"] = self.manufacturer
        if self.model:
            device["model"] = self.model
        if self.serial_number:
            device["serial_number"] = self.serial_number
        if self.sw_version:
            device["sw_version"] = self.sw_version
        if self.via_device:
            device["via_device"] = self.via_device
        return device


@dataclass(frozen=True, slots=True)
class Topics:
    """Where everything is published (docs/home-assistant.md, "Topics").

    ``{base}/{site}/device/{device}/{section}/{field}`` an edge device's value,
    ``{base}/{site}/site/{section}/{field}`` a site's value relayed by the hub,
    ``{base}/{site}/site/devices/{device}/state`` a device's health state there,
    ``{base}/{site}/energy/{quantity}`` the agent's running energy total of its site,
    ``{base}/{site}/edge/status`` and ``{base}/hub/{client}/status`` the
    publishers' availability, ``{base}/hub/{client}/site/{site}/status`` whether
    that hub hears the site; discovery configs under
    ``{discovery_prefix}/sensor/{unique_id}/config``.
    """

    base: str = "ems"
    discovery_prefix: str = "homeassistant"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    def edge_status(self, site: str) -> str:
        return f"{self.base}/{topic_level(site)}/edge/status"

    def hub_status(self, client_id: str) -> str:
        return f"{self.base}/hub/{topic_level(client_id)}/status"

    def site_status(self, client_id: str, site: str) -> str:
        """Whether the hub ``client_id`` hears the site: per hub, since a device that
        moves between the hubs of a cluster is left by one and joined by the other in
        no set order."""
        return f"{self.base}/hub/{topic_level(client_id)}/site/{topic_level(site)}/status"

    def device_state(self, site: str, device: str, key: str) -> str:
        return f"{self.base}/{topic_level(site)}/device/{topic_level(device)}/{_key_levels(key)}"

    def site_state(self, site: str, key: str) -> str:
        return f"{self.base}/{topic_level(site)}/site/{_key_levels(key)}"

    def site_device_state(self, site: str, device: str) -> str:
        """A device of the site as the hub hears of it (its health state)."""
        return f"{self.base}/{topic_level(site)}/site/devices/{topic_level(device)}/state"

    def site_energy(self, site: str, quantity: str) -> str:
        return f"{self.base}/{topic_level(site)}/energy/{topic_level(quantity)}"

    def discovery(self, unique_id: str) -> str:
        return f"{self.discovery_prefix}/sensor/{object_id(unique_id)}/config"


def _key_levels(key: str) -> str:
    section, _, name = key.rpartition(".")
    return f"{topic_level(section)}/{topic_level(name)}" if section else topic_level(name)


def discovery_config(
    *,
    key: str,
    value: float | str,
    unique_id: str,
    state_topic: str,
    device: HaDevice,
    availability: Iterable[str],
    expire_after_s: int | None,
    sw_version: str = "",
    name: str | None = None,
) -> str:
    """The retained discovery config (JSON) of the sensor for the value ``key``.

    ``availability``: topics that say ``online``/``offline``; all must say ``online``
    (``availability_mode`` ``all``). ``expire_after_s``: a value not updated for that
    long is shown unavailable (a stale value; sensor.mqtt, ``expire_after``); None: never
    (a retained state sent only when it changes).
    ``name``: the entity's name, when the one made from ``key`` (:func:`entity_name`)
    would not read well.
    """
    kind = kind_of(key, value)
    config: dict[str, Any] = {
        "name": name or entity_name(key),
        "unique_id": object_id(unique_id),
        "state_topic": state_topic,
        "availability": [
            {"topic": topic, "payload_available": AVAILABLE, "payload_not_available": NOT_AVAILABLE}
            for topic in availability
        ],
        "availability_mode": "all",
        "device": device.payload(),
        "origin": {"name": ORIGIN, **({"sw_version": sw_version} if sw_version else {})},
    }
    if expire_after_s is not None:
        config["expire_after"] = expire_after_s
    if kind.device_class is not None:
        config["device_class"] = kind.device_class
    if kind.unit is not None:
        config["unit_of_measurement"] = kind.unit
    if kind.state_class is not None:
        config["state_class"] = kind.state_class.value
    return json.dumps(config, separators=(",", ":"), ensure_ascii=False)


class ChangeGate:
    """Whether a state is worth sending: it changed, or it is due for a refresh.

    Home Assistant records no new state for an unchanged value (without
    ``force_update``), so sending the same payload every second only costs CPU on
    both sides; but a value must be repeated before ``expire_after`` runs out, or
    it would be shown unavailable while fresh. ``refresh_s`` is that repetition
    (a third of the expiry, so one lost message is not enough to expire it).
    """

    def __init__(self, refresh_s: float) -> None:
        self.refresh_s = refresh_s
        self._sent: dict[object, tuple[str, float]] = {}

    def should_send(self, key: object, payload: str, now: float) -> bool:
        last = self._sent.get(key)
        if last is not None and last[0] == payload and now - last[1] < self.refresh_s:
            return False
        self._sent[key] = (payload, now)
        return True

    def forget(self) -> None:
        """Send everything at the next chance (a new connection: the broker knows nothing)."""
        self._sent.clear()
