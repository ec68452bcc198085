"""The parser of hub -> device frames (docs/protocol.md, "Hub -> device"), for the edge.

Held to the rule of the hub's own device-frame parser: it never raises, for
any input. A frame is an :class:`~telemetry.frames.AckFrame`, an
:class:`~telemetry.frames.ErrorFrame`, a :class:`~telemetry.timesync.TimeFrame`,
or a :class:`BadHubFrame` saying why it could not be used, so the uplink can
drop it, count it and go on. Types are as strict as on the device side: a seq
is a JSON integer from 0 to 2^63-1, never a string or a boolean.

One pydantic-core pass (JSON parsing and validation together, the discriminator
``type`` choosing the model): acks arrive several times a second.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import Field, TypeAdapter, ValidationError

from telemetry.frames import AckFrame, ErrorFrame, describe_validation_error
from telemetry.timesync import TimeFrame

__all__ = ["BadHubFrame", "HubFrame", "HubFrameProblem", "parse_hub_frame"]

HubFrame = AckFrame | ErrorFrame | TimeFrame

_HUB_FRAME: Final = TypeAdapter[HubFrame](Annotated[HubFrame, Field(discriminator="type")])


class HubFrameProblem(enum.StrEnum):
    """Why a hub frame was dropped."""

    BINARY = "binary"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"  # a later hub's extension, or garbage: ignored either way
    MALFORMED = "malformed"  # a known type with fields of the wrong type or range


@dataclass(frozen=True, slots=True)
class BadHubFrame:
    """A hub frame the edge cannot use, and why (the reason may quote the frame)."""

    problem: HubFrameProblem
    reason: str


_PROBLEM_OF_ERROR: Final = {
    "json_invalid": HubFrameProblem.NOT_JSON,
    "json_type": HubFrameProblem.NOT_JSON,
    "dict_type": HubFrameProblem.NOT_AN_OBJECT,
    "model_attributes_type": HubFrameProblem.NOT_AN_OBJECT,
    "union_tag_invalid": HubFrameProblem.UNKNOWN_TYPE,
    "union_tag_not_found": HubFrameProblem.UNKNOWN_TYPE,
    "string_unicode": HubFrameProblem.NOT_JSON,  # a lone surrogate: no UTF-8 sent it
}


def parse_hub_frame(message: str | bytes) -> HubFrame | BadHubFrame:
    """One hub frame, typed; never raises."""
    if isinstance(message, bytes):
        return BadHubFrame(HubFrameProblem.BINARY, "binary frame")
    try:
        return _HUB_FRAME.validate_json(message)
    except ValidationError as err:
        kind = err.errors(include_url=False)[0]["type"]
        problem = _PROBLEM_OF_ERROR.get(kind, HubFrameProblem.MALFORMED)
        return BadHubFrame(problem, describe_validation_error(err, subject="frame"))
    except ValueError as err:
        # Text pydantic-core cannot even encode (a lone surrogate): not JSON from a hub.
        return BadHubFrame(HubFrameProblem.NOT_JSON, f"not JSON: {type(err).__name__}")
