"""What hubs say to each other through Redis: key and channel names, messages.

Pure: encoding and decoding on plain values (tested in tests/hub/cluster/test_wire.py).

Two kinds of pub/sub messages:

- **device messages**, on the device's own channel ``ems:dev:{device_id}``,
  published by the hub the device is registered at: one header line (which hub,
  under which ownership epoch, and one code letter per frame) and then the
  dashboard frames themselves, one per line, exactly as dashboards get them
  (a compact JSON frame never holds a raw newline). Several frames of one
  device travel in one message: pub/sub traffic is batched.
- **control messages**, on ``ems:ctl``, which every hub reads: a device
  claimed elsewhere (``kick``), dashboards watching devices (``watch``,
  ``unwatch``). JSON, validated with pydantic on arrival.

Device ids (``telemetry.is_valid_device_id``) and hub ids (:func:`is_valid_hub_id`)
are of ``A-Z a-z 0-9 _ - .``: they go into keys and into the Lua scripts'
messages without escaping.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hub.relay import FrameKind

CONTROL_CHANNEL: Final = "ems:ctl"
DEVICE_CHANNEL_PREFIX: Final = "ems:dev:"

MAX_HUB_ID_CHARS: Final = 64
_HUB_ID = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_HUB_ID_CHARS}}}")


def is_valid_hub_id(hub_id: str) -> bool:
    return _HUB_ID.fullmatch(hub_id) is not None


def device_channel(device_id: str) -> str:
    return DEVICE_CHANNEL_PREFIX + device_id


def device_of_channel(channel: str) -> str | None:
    return channel.removeprefix(DEVICE_CHANNEL_PREFIX) if channel.startswith("ems:dev:") else None


def own_key(device_id: str) -> str:
    """``"{hub_id} {epoch}"`` of the device's owner, with a lease (PX)."""
    return f"ems:own:{device_id}"


def epoch_key(device_id: str) -> str:
    """The device's ownership counter (INCR): every claim gets a higher epoch."""
    return f"ems:epoch:{device_id}"


def snap_key(device_id: str) -> str:
    """Hash ``v`` (status version) and ``m`` (a device message): the last status published."""
    return f"ems:snap:{device_id}"


def watchers_key(device_id: str) -> str:
    """Sorted set of hub ids with a dashboard of the device, scored by expiry (ms)."""
    return f"ems:watch:{device_id}"


class Code(enum.Enum):
    """One letter per frame in a device message's header."""

    STATUS = "S"  # starts a snapshot: status, then optional SNAP_HEALTH and SNAP_LAST
    SNAP_HEALTH = "H"
    SNAP_LAST = "L"
    READING = FrameKind.READING.value
    HEALTH = FrameKind.HEALTH.value
    HISTORY = FrameKind.HISTORY.value


_CODES = {code.value: code for code in Code}


class WireError(ValueError):
    """A message another hub (or something else on Redis) sent that we cannot use."""


def status_version(epoch: int, online: bool) -> int:
    """Order of status changes: epoch e online < epoch e offline < epoch e+1 online."""
    return 2 * epoch + (0 if online else 1)


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    hub: str
    epoch: int
    items: tuple[tuple[Code, str], ...]

    def encode(self) -> bytes:
        codes = "".join(code.value for code, _ in self.items)
        head = json.dumps({"h": self.hub, "e": self.epoch, "k": codes}, separators=(",", ":"))
        return "\n".join([head, *(frame for _, frame in self.items)]).encode()

    @classmethod
    def decode(cls, data: bytes) -> DeviceMessage:
        try:
            lines = data.decode().split("\n")
            head = json.loads(lines[0])
        except (UnicodeDecodeError, ValueError) as err:
            raise WireError(f"not a device message: {err}") from err
        if not isinstance(head, dict):
            raise WireError("device message header is not an object")
        hub, epoch, codes = head.get("h"), head.get("e"), head.get("k")
        if not isinstance(hub, str) or not is_valid_hub_id(hub):
            raise WireError("device message without a valid hub id")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise WireError("device message without a valid epoch")
        if not isinstance(codes, str) or len(codes) != len(lines) - 1:
            raise WireError("device message: codes and frames do not match")
        try:
            items = tuple((_CODES[c], frame) for c, frame in zip(codes, lines[1:], strict=True))
        except KeyError as err:
            raise WireError(f"device message: unknown code {err}") from err
        return cls(hub, epoch, items)


def snapshot_items(
    status: str, health: str | None, last: str | None
) -> tuple[tuple[Code, str], ...]:
    items = [(Code.STATUS, status)]
    if health is not None:
        items.append((Code.SNAP_HEALTH, health))
    if last is not None:
        items.append((Code.SNAP_LAST, last))
    return tuple(items)


def status_online(status_frame: str) -> bool:
    """The ``online`` of a dashboard status frame (hub/connections.py writes them)."""
    try:
        value = json.loads(status_frame)
    except ValueError as err:
        raise WireError(f"status frame is not JSON: {err}") from err
    if not isinstance(value, dict) or not isinstance(value.get("online"), bool):
        raise WireError("status frame without online")
    return bool(value["online"])


# -- control messages -------------------------------------------------------------

_Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class _Control(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Kick(_Control):
    """Device ``d`` was claimed under epoch ``e`` by hub ``h``: older sockets go (1008)."""

    t: Literal["kick"]
    d: _Id
    e: Annotated[int, Field(ge=0)]
    h: _Id


class Watch(_Control):
    """Hub ``h`` has dashboards for devices ``d`` for ``ttl`` seconds more.

    ``snapshot``: the owners answer with a snapshot (a new watch); a refresh does not.
    """

    t: Literal["watch"]
    h: _Id
    d: Annotated[list[_Id], Field(max_length=10_000)]
    ttl: Annotated[float, Field(gt=0, le=3600)]
    snapshot: bool = True


class Unwatch(_Control):
    t: Literal["unwatch"]
    h: _Id
    d: Annotated[list[_Id], Field(max_length=10_000)]


Control = Annotated[Kick | Watch | Unwatch, Field(discriminator="t")]
_CONTROL: TypeAdapter[Kick | Watch | Unwatch] = TypeAdapter(Control)


def decode_control(data: bytes) -> Kick | Watch | Unwatch:
    try:
        return _CONTROL.validate_json(data)
    except ValidationError as err:
        raise WireError(f"bad control message: {err.error_count()} error(s)") from err


def encode_control(message: Kick | Watch | Unwatch) -> str:
    return message.model_dump_json()


def kick_message_lua() -> str:
    """The Lua expression of a kick message (the claim script publishes it).

    ``device`` and ``hub`` are ids of the safe alphabet above; ``e`` the epoch.
    """
    return '\'{"t":"kick","d":"\' .. device .. \'","e":\' .. e .. \',"h":"\' .. hub .. \'"}\''
