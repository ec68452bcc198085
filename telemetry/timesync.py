"""The time frames (docs/protocol.md, "Time"): a device asks, the hub states its clock.

Device -> hub ``{"type": "time_request", "id": 7}``; hub -> device
``{"type": "time", "id": 7, "hub_ts": "2026-12-03T16:20:00.123456Z"}``. The hub
reads its clock between receiving the request and sending the answer, so the
device, timing the round trip on its monotonic clock, knows the hub's time
within half of it (edge/hubtime.py). A documented extension of protocol v1:
a device that never asks never gets a time frame; a hub that does not know
the request refuses it as an unknown frame type (no seq, so nothing to ack).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from telemetry.reading import RFC3339, format_ts

__all__ = ["TimeFrame", "TimeRequest", "time_frame", "time_request"]

# A request id fits a JSON number every side reads exactly.
_MAX_ID = 2**53 - 1


class TimeRequest(BaseModel):
    """Device -> hub: "what time is it?" ``id`` is echoed so the device can pair the answer."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["time_request"]
    id: Annotated[int, Field(ge=0, le=_MAX_ID, strict=True)]


class TimeFrame(BaseModel):
    """Hub -> device: the hub's clock (UTC) when it answered request ``id``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["time"] = "time"
    id: Annotated[int, Field(ge=0, le=_MAX_ID, strict=True)]
    hub_ts: datetime

    @field_validator("hub_ts", mode="before")
    @classmethod
    def _is_rfc3339(cls, value: object) -> object:
        # Strict, as a reading's ts: pydantic alone would take an epoch number too.
        if isinstance(value, str):
            if RFC3339.fullmatch(value) is None:
                raise ValueError("must be an RFC 3339 date-time")
        elif not isinstance(value, datetime):
            raise ValueError("must be an RFC 3339 date-time string")
        return value

    @field_validator("hub_ts")
    @classmethod
    def _has_an_offset(cls, value: datetime) -> datetime:
        if value.utcoffset() is None:
            raise ValueError("must carry a UTC offset (RFC 3339)")
        try:
            value.timestamp()  # what the edge takes from it (edge/uplink.py)
        except (OverflowError, ValueError):
            # Year 1 or 9999 shifted by its offset leaves what a datetime can hold.
            raise ValueError("is out of range") from None
        return value


def time_request(request_id: int) -> str:
    """The device's request frame."""
    return f'{{"type":"time_request","id":{int(request_id)}}}'


def time_frame(request_id: int, now: datetime) -> str:
    """The hub's answer: its clock ``now`` (UTC, microseconds) for request ``request_id``."""
    return f'{{"type":"time","id":{int(request_id)},"hub_ts":"{format_ts(now)}"}}'
