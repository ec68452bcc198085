"""Every frame of protocol v1 other than the reading itself, and the device-frame parser.

Device -> hub: a reading, or ``{"type": "batch", "items": [...]}``.
Hub -> device: ``ack`` and ``error``. Hub -> dashboard: ``status`` and ``reading``.

The parser never raises on bad input: it returns what was valid and, per
rejected reading, a reason the hub can count, log and send back, so one bad
item never costs the good ones beside it (docs/protocol.md, "A batch").
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from telemetry.reading import MAX_SEQ, Reading, format_ts

MAX_FRAME_BYTES: Final = 1024 * 1024  # docs/protocol.md: larger closes with 1009
MAX_BATCH_ITEMS: Final = 1000  # docs/protocol.md, "A batch"
# No valid frame nests deeper than 7 (batch, items, reading, devices, a device, section,
# phase list); a value deeper than this is cut to null before parsing (see _load_json).
MAX_JSON_DEPTH: Final = 32
# Client text quoted in a reason (a frame type, a key) is cut to this many characters.
_QUOTE_CHARS: Final = 64
# A frame nested too deep is taken apart token by token in Python: bounded, so a
# hostile megabyte costs a fraction of a second (a batch of 1,000 readings is ~40,000).
_MAX_DEEP_TOKENS: Final = 200_000
# What _without_deep_values needs to track nesting: a string; a flat container
# (nothing nested inside, so it changes no depth); a run of opening or of closing
# brackets.
_JSON_STRING: Final = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_JSON_TOKENS: Final = re.compile(
    rf'{_JSON_STRING}|\[[^\[\]{{}}"]*\]|\{{(?:[^\[\]{{}}"]|{_JSON_STRING})*\}}|[\[{{]+|[\]}}]+'
)


class CloseCode(enum.IntEnum):
    """WebSocket close codes the protocol uses (docs/protocol.md, "Close codes"; RFC 6455 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011  # an unexpected error in the hub, never the sender's fault
    TRY_AGAIN_LATER = 1013


class FrameProblem(enum.StrEnum):
    """Why a device frame (or part of it) was dropped; used as a metrics label."""

    BINARY = "binary"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    BAD_BATCH = "bad_batch"
    INVALID_READING = "invalid_reading"
    BATCH_ITEM_WITHOUT_SEQ = "batch_item_without_seq"


class _NotJSON(Exception):
    """The text is not JSON that can be used (why is the message)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """One reading (or a whole frame) that was dropped, with why."""

    problem: FrameProblem
    reason: str
    seq: int | None = None  # set when the rejected reading carried a usable seq


@dataclass(frozen=True, slots=True)
class ParsedFrame:
    """What one device frame held: valid readings, and what was rejected."""

    readings: tuple[Reading, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    is_batch: bool = False


@dataclass(slots=True)
class _Collector:
    readings: list[Reading] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def describe_validation_error(err: ValidationError, subject: str = "reading") -> str:
    """``battery.soc_pct: must be <= 100``-style text for the first problem of an error.

    ``subject`` names the whole input when the problem is not in one field.
    """
    first = err.errors(include_url=False)[0]
    location = ".".join(_quote(part) for part in first["loc"]) or subject
    message = first["msg"]
    if first["type"] == "string_pattern_mismatch" and first["loc"][-1:] == ("[key]",):
        message = "names are 1 to 64 characters of A-Z a-z 0-9 _ . -"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    ctx = first.get("ctx") or {}
    if first["type"] in {"less_than_equal", "greater_than_equal", "less_than", "greater_than"}:
        bound = next(iter(ctx.values()), None)
        op = {
            "less_than_equal": "<=",
            "greater_than_equal": ">=",
            "less_than": "<",
            "greater_than": ">",
        }[first["type"]]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        message = f"must be {op} {bound}"
    return f"{location}: {message}"


def _quote(part: object) -> str:
    """A location part or a value a client sent, cut short for a reason."""
    text = part if isinstance(part, str) else repr(part)
    return text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "..."


def _seq_of(raw: Any) -> int | None:
    """The item's seq if it is one the protocol allows (0..2^63-1), so it can be acked."""
    if isinstance(raw, dict):
        seq = raw.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= MAX_SEQ:
            return seq
    return None


def _without_deep_values(text: str) -> str:
    """``text`` with every value nested deeper than ``MAX_JSON_DEPTH`` replaced by null.

    ``json.loads`` raises RecursionError on deep nesting, which would cost a
    whole batch for one hostile item. No valid value is that deep, and the
    container that held the cut value is itself too deep to be valid, so the
    item is still refused (with its seq, so it is acked) and its neighbours
    keep their chance. Brackets inside strings do not count. Only frames that
    ``json.loads`` refused for their depth come here; runs of brackets are
    taken a run at a time, so a megabyte of ``[`` costs one step, and a frame
    of more than ``_MAX_DEEP_TOKENS`` parts is refused whole (``_NotJSON``).
    """
    limit = MAX_JSON_DEPTH
    pieces: list[str] = []
    depth = 0
    kept_from = 0
    cutting = False
    for count, match in enumerate(_JSON_TOKENS.finditer(text)):
        if count == _MAX_DEEP_TOKENS:
            raise _NotJSON("nested too deep, with too many parts to take apart")
        token = match.group()
        first, last = token[0], token[-1]
        if first == '"':
            continue
        if last in "]}" and first in "[{":  # a flat container
            if not cutting and depth >= limit:
                pieces.append(text[kept_from : match.start()])
                pieces.append("null")
                kept_from = match.end()
            continue
        if first in "[{":
            if not cutting and depth + len(token) > limit:
                # The bracket that opens depth limit + 1 starts the cut.
                cut_at = match.start() + (limit - depth)
                pieces.append(text[kept_from:cut_at])
                pieces.append("null")
                cutting = True
            depth += len(token)
        else:
            if cutting and depth - len(token) <= limit:
                # The bracket that closes depth limit + 1 ends it.
                kept_from = match.start() + (depth - limit)
                cutting = False
            depth -= len(token)
    if cutting:
        raise _NotJSON("unbalanced brackets")
    pieces.append(text[kept_from:])
    return "".join(pieces)


def _load_json(text: str) -> Any:
    """``json.loads``, with values nested too deep cut to null; raises only _NotJSON."""
    try:
        return json.loads(text)
    except RecursionError:
        pass
    except ValueError as err:
        raise _NotJSON(str(err)) from None
    try:
        return json.loads(_without_deep_values(text))
    except RecursionError:
        raise _NotJSON("nested too deep") from None
    except ValueError as err:
        raise _NotJSON(str(err)) from None


def _validate_one(raw: Any, out: _Collector, *, now: datetime | None, require_seq: bool) -> None:
    if require_seq and _seq_of(raw) is None:
        out.rejected.append(
            Rejected(
                FrameProblem.BATCH_ITEM_WITHOUT_SEQ,
                f"seq: a batch item needs an integer seq from 0 to {MAX_SEQ}",
            )
        )
        return
    try:
        reading = Reading.model_validate(raw, context={"now": now} if now else None)
    except ValidationError as err:
        out.rejected.append(
            Rejected(FrameProblem.INVALID_READING, describe_validation_error(err), _seq_of(raw))
        )
        return
    except (RecursionError, OverflowError) as err:
        # Not expected after _load_json and the ts checks; one item must still never
        # cost its batch (docs/protocol.md, "A batch").
        reason = f"reading: cannot be validated ({type(err).__name__})"
        out.rejected.append(Rejected(FrameProblem.INVALID_READING, reason, _seq_of(raw)))
        return
    out.readings.append(reading)


class _Batch(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["batch"]
    items: Annotated[list[Reading], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


def _parse_valid_frame(text: str, now: datetime | None) -> ParsedFrame | None:
    """The fast path for the common case, a wholly valid frame.

    pydantic-core parses the JSON and validates in one pass, about twice as fast
    as ``json.loads`` then ``model_validate``. Anything it refuses (or that is not
    plainly a reading or a batch) returns ``None`` here — not a failure, but "take
    the careful path", which classifies every problem item by item.
    """
    context = {"now": now} if now else None
    try:
        if '"type"' not in text:
            return ParsedFrame(readings=(Reading.model_validate_json(text, context=context),))
        if text.lstrip().startswith('{"type":"batch"') or text.lstrip().startswith(
            '{"type": "batch"'
        ):
            batch = _Batch.model_validate_json(text, context=context)
            if all(item.seq is not None for item in batch.items):
                return ParsedFrame(readings=tuple(batch.items), is_batch=True)
    except ValidationError:
        pass
    return None


def parse_device_frame(text: str | bytes, *, now: datetime | None = None) -> ParsedFrame:
    """Parse one device text frame; never raises on bad input.

    ``now`` is the hub's clock for the "5 minutes ahead" rule (defaults to the
    current time).
    """
    if isinstance(text, bytes):
        return ParsedFrame(rejected=(Rejected(FrameProblem.BINARY, "binary frame"),))
    if len(text) > MAX_FRAME_BYTES:
        return ParsedFrame(rejected=(Rejected(FrameProblem.TOO_LARGE, "frame over 1 MiB"),))
    fast = _parse_valid_frame(text, now)
    if fast is not None:
        return fast
    try:
        raw = _load_json(text)
    except _NotJSON as err:
        return ParsedFrame(rejected=(Rejected(FrameProblem.NOT_JSON, f"not JSON: {err}"),))
    if not isinstance(raw, dict):
        return ParsedFrame(
            rejected=(Rejected(FrameProblem.NOT_AN_OBJECT, "frame is not a JSON object"),)
        )
    out = _Collector()
    if raw.get("type") == "batch":
        items = raw.get("items")
        if not isinstance(items, list) or not items or len(items) > MAX_BATCH_ITEMS:
            reason = f"items: must be a list of 1 to {MAX_BATCH_ITEMS} readings"
            return ParsedFrame(rejected=(Rejected(FrameProblem.BAD_BATCH, reason),), is_batch=True)
        for item in items:
            _validate_one(item, out, now=now, require_seq=True)
        return ParsedFrame(tuple(out.readings), tuple(out.rejected), is_batch=True)
    if "type" in raw and raw["type"] != "reading":
        reason = f"unknown frame type {_quote(repr(raw['type']))}"
        return ParsedFrame(rejected=(Rejected(FrameProblem.NOT_AN_OBJECT, reason),))
    _validate_one(raw, out, now=now, require_seq=False)
    return ParsedFrame(tuple(out.readings), tuple(out.rejected))


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# A seq as the protocol allows it (docs/protocol.md, "A reading"), strictly a JSON integer.
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ, strict=True)]


class AckFrame(_Frame):
    """Hub -> device: every seq in the ranges is committed or was rejected as invalid."""

    type: Literal["ack"] = "ack"
    ranges: Annotated[list[tuple[Seq, Seq]], Field(strict=True)]


class ErrorFrame(_Frame):
    """Hub -> device: why a reading was rejected."""

    type: Literal["error"] = "error"
    seq: Seq | None = None
    reason: Annotated[str, Field(strict=True)]


class StatusFrame(_Frame):
    """Hub -> dashboard: the device connected or disconnected."""

    type: Literal["status"] = "status"
    device_id: str
    online: bool
    since: str | None = None


def batch_frame(readings: list[dict[str, Any]]) -> str:
    """A device -> hub batch frame for readings already in wire form."""
    if not 0 < len(readings) <= MAX_BATCH_ITEMS:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH_ITEMS} readings, not {len(readings)}")
    return json.dumps({"type": "batch", "items": readings}, separators=(",", ":"))


def dashboard_reading(device_id: str, reading: Reading, received_at: datetime) -> dict[str, Any]:
    """Hub -> dashboard reading frame (docs/protocol.md, "Hub -> dashboard")."""
    frame: dict[str, Any] = {
        "type": "reading",
        "device_id": device_id,
        "received_at": format_ts(received_at),
    }
    frame.update(reading.to_wire())
    return frame
