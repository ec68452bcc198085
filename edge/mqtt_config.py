"""The ``[mqtt]`` section of the edge config: Home Assistant over MQTT (docs/configuration.md).

Optional: without it the agent opens no MQTT connection. edge/config.py validates
the file with :class:`MqttSection` and builds :class:`MqttConfig` with
:func:`build_mqtt`; :func:`link_settings` resolves the password (from ``password``,
``password_file`` or ``$EMS_MQTT_PASSWORD``) when the agent starts, and registers
it for redaction (telemetry/redaction.py) before anything could log it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

from telemetry.homeassistant import Topics, ValueFilter
from telemetry.mqtt_link import LinkSettings, parse_broker_url
from telemetry.redaction import register_secret

__all__ = [
    "PASSWORD_ENV",
    "MqttConfig",
    "MqttSection",
    "build_mqtt",
    "link_settings",
    "mqtt_problems",
]

PASSWORD_ENV: Final = "EMS_MQTT_PASSWORD"
# A topic level of ours: no wildcards, no separators at either end, no empty level.
_TOPIC: Final = re.compile(r"[^/+#\x00]+(/[^/+#\x00]+)*")
# MQTT 3.1.1, 3.1.3.1: a server must accept 1-23 of these; most accept more.
_CLIENT_ID: Final = re.compile(r"[0-9A-Za-z_.-]{1,64}")
PATTERN_CHARS: Final = re.compile(r"[A-Za-z0-9_.*?\[\]-]{1,80}")


class MqttSection(BaseModel):
    """The ``[mqtt]`` table as written (unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    url: str
    username: Annotated[str, Field(min_length=1)] | None = None
    password: Annotated[str, Field(min_length=1)] | None = None
    password_file: Annotated[str, Field(min_length=1)] | None = None
    ca_file: Annotated[str, Field(min_length=1)] | None = None
    base_topic: str = "ems"
    discovery_prefix: str = "homeassistant"
    client_id: str | None = None
    ha_discovery: bool = True
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    stale_after_s: Annotated[int, Field(ge=1, le=86_400)] = 30
    max_queued: Annotated[int, Field(ge=1, le=1_000_000)] = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttConfig:
    """The validated section; the password is read only by :func:`link_settings`."""

    url: str
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    topics: Topics = field(default_factory=Topics)
    client_id: str = ""
    ha_discovery: bool = True
    values: ValueFilter = field(default_factory=ValueFilter)
    stale_after_s: int = 30
    max_queued: int = 1000


def mqtt_problems(section: MqttSection, *, interval_s: float) -> list[tuple[str, str]]:
    """The ``(key, reason)`` of every rule the section breaks beyond its types."""
    problems: list[tuple[str, str]] = []
    try:
        url = parse_broker_url(section.url)
    except ValueError as err:
        problems.append(("mqtt.url", str(err)))
    else:
        if section.ca_file is not None and not url.tls:
            problems.append(("mqtt.ca_file", "only used with an mqtts:// url"))
        if url.username and section.username and url.username != section.username:
            problems.append(("mqtt.username", "differs from the user named in mqtt.url"))
    if section.password is not None and section.password_file is not None:
        problems.append(("mqtt.password_file", "give password or password_file, not both"))
    for key in ("base_topic", "discovery_prefix"):
        value = getattr(section, key)
        if _TOPIC.fullmatch(value) is None:
            problems.append(
                (f"mqtt.{key}", f"must be topic levels without + # or empty levels (got {value!r})")
            )
    if section.client_id is not None and _CLIENT_ID.fullmatch(section.client_id) is None:
        problems.append(("mqtt.client_id", "must be 1 to 64 of A-Z a-z 0-9 _ . -"))
    for key in ("include", "exclude"):
        for index, pattern in enumerate(getattr(section, key)):
            if PATTERN_CHARS.fullmatch(pattern) is None:
                problems.append(
                    (
                        f"mqtt.{key}[{index}]",
                        f"{pattern!r} must be a name like grid.power_w, grid.* or *_wh",
                    )
                )
    # A value is published every sampling interval: expiring sooner shows it stale between two.
    if section.stale_after_s < 2 * interval_s:
        problems.append(
            (
                "mqtt.stale_after_s",
                f"must be at least twice sampling.interval_s ({2 * interval_s:g} s)",
            )
        )
    return problems


def build_mqtt(section: MqttSection, *, base: Path, device_id: str) -> MqttConfig:
    """The section as values; relative paths are taken from ``base``."""

    def path(text: str | None) -> Path | None:
        if text is None:
            return None
        candidate = Path(text).expanduser()
        return candidate if candidate.is_absolute() else base / candidate

    return MqttConfig(
        url=section.url,
        username=section.username,
        password=section.password,
        password_file=path(section.password_file),
        ca_file=path(section.ca_file),
        topics=Topics(base=section.base_topic, discovery_prefix=section.discovery_prefix),
        client_id=section.client_id or f"ems-edge-{device_id}",
        ha_discovery=section.ha_discovery,
        values=ValueFilter(tuple(section.include), tuple(section.exclude)),
        stale_after_s=section.stale_after_s,
        max_queued=section.max_queued,
    )


class MqttPasswordError(Exception):
    """The password file cannot be read; ``key`` names the config key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


def link_settings(config: MqttConfig, env: Mapping[str, str] | None = None) -> LinkSettings:
    """The broker connection: ``$EMS_MQTT_PASSWORD`` wins, then ``password``, then the file.

    Raises :class:`MqttPasswordError` for an unreadable or empty password file.
    """
    env = os.environ if env is None else env
    url = parse_broker_url(config.url)  # checked when the file was loaded
    password = env.get(PASSWORD_ENV, "").strip() or config.password
    if password is None and config.password_file is not None:
        try:
            password = config.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise MqttPasswordError(
                "mqtt.password_file", f"cannot read {str(config.password_file)!r}: {err}"
            ) from err
        if not password:
            raise MqttPasswordError("mqtt.password_file", f"{str(config.password_file)!r} is empty")
    register_secret(password)
    return LinkSettings(
        host=url.host,
        port=url.port,
        tls=url.tls,
        ca_file=config.ca_file,
        username=config.username or url.username,
        password=password,
        client_id=config.client_id,
        max_queued=config.max_queued,
    )
