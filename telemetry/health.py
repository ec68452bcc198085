"""Device health, a documented extension of protocol v1 (docs/protocol.md, "Device health").

An edge agent reads several devices (an inverter, a meter, a battery) and
sends one reading per interval with whatever is fresh. When a device stops
answering, its section just goes missing; when every device does, there is no
reading at all, and the agent's socket stays up. A ``health`` frame says
which devices are being read and which are failing, so the hub can tell a
quiet site from a broken one:

``{"type": "health", "interval_s": 1.0, "devices": [{"name": "inverter",
"role": "inverter", "state": "failing", "for_s": 12.5, "last_ok_age_s": 13.4,
"error": "connection refused"}]}``

A device that reports who it is (its maker, model, serial number, firmware: read
once per connection from the registers its vendor documents) has an ``identity``
object, each of its four texts optional: ``"identity": {"manufacturer": "Fronius",
"model": "Symo GEN24 10.0 Plus", "serial_number": "12345678", "firmware_version":
"1.34.6-1"}``. It is an extension of the frame: a hub that does not know it ignores
it (unknown keys are ignored), and a frame without it (an older agent) is valid.

Times are ages in seconds at the moment the frame is sent (``for_s``: how
long the device has been in its state; ``last_ok_age_s``: since its last good
read), so the edge's wall clock, which may be unsynced, plays no part: the hub
turns them into instants with its own clock. A hub that does not know the frame
drops it as an unknown type and counts it (docs/protocol.md), nothing else.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

# An agent reads a few devices; this bounds what one frame can make the hub keep.
MAX_HEALTH_DEVICES: Final = 64
MAX_ERROR_CHARS: Final = 200
# How the frame starts when an agent writes it (compact JSON, ``type`` first).
HEALTH_FRAME_PREFIX: Final = '{"type":"health"'
# An IANA time zone name ("Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5",
# "UTC"): the characters the tz database uses. The edge checks the name with zoneinfo
# (edge/config.py); the wire only bounds it, as a hub's tz database may be older.
TIMEZONE_PATTERN: Final = r"^[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+){0,3}$"
# What the hub's device door looks for before anything else (hub/device_door.py):
# the same start, spaces allowed, anchored, so a reading costs one failed match.
_HEALTH_FRAME_START: Final = re.compile(r'\{\s*"type"\s*:\s*"health"')


def is_health_frame(text: str) -> bool:
    """Whether a device frame is a health frame (it starts with its ``type``)."""
    return _HEALTH_FRAME_START.match(text) is not None


class HealthState(enum.StrEnum):
    UNKNOWN = "unknown"  # not tried yet
    OK = "ok"  # its last read succeeded
    FAILING = "failing"  # its last read failed; its values are left out of readings


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)


# Printable ASCII only: what a device's registers may hold once trimmed (drivers/identity.py).
IDENTITY_TEXT_PATTERN: Final = r"^[\x20-\x7e]+$"
MAX_IDENTITY_CHARS: Final = 64
IdentityText = Annotated[
    str, Field(min_length=1, max_length=MAX_IDENTITY_CHARS, pattern=IDENTITY_TEXT_PATTERN)
]


class DeviceIdentityReport(_Model):
    """What a device says it is (docs/protocol.md, "Device health"); each text optional."""

    manufacturer: IdentityText | None = None
    model: IdentityText | None = None
    serial_number: IdentityText | None = None
    firmware_version: IdentityText | None = None


class DeviceHealthReport(_Model):
    """One device of the agent, as the edge sees it when it sends the frame."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    role: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    state: HealthState
    for_s: Annotated[float, Field(ge=0.0, le=1e9)] = 0.0
    last_ok_age_s: Annotated[float, Field(ge=0.0, le=1e9)] | None = None
    error: Annotated[str, Field(max_length=MAX_ERROR_CHARS)] = ""
    identity: DeviceIdentityReport | None = None


class HealthFrame(_Model):
    """Device -> hub: the health of every device an agent reads."""

    type: Literal["health"] = "health"
    interval_s: Annotated[float, Field(gt=0.0, le=86_400.0)] | None = None
    devices: Annotated[list[DeviceHealthReport], Field(max_length=MAX_HEALTH_DEVICES)]
    # docs/protocol.md, "Device health": the site's time zone, for its energy per day.
    timezone: Annotated[str, Field(max_length=64, pattern=TIMEZONE_PATTERN)] | None = None

    def wire(self) -> str:
        """Compact JSON, ``type`` first (it starts with :data:`HEALTH_FRAME_PREFIX`)."""
        return self.model_dump_json(exclude_none=True)
