"""A bounded fuzz of both parsers: whatever arrives, they return a typed result, never raise.

The hub's device-frame parser (``parse_device_frame``) and the edge's hub-frame
parser (``parse_hub_frame``) get arbitrary text and bytes, arbitrary JSON, and
valid frames with parts swapped for arbitrary JSON or nested very deep. A few
thousand examples in all, derandomized so a run is repeatable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry import (
    MAX_BATCH_ITEMS,
    AckFrame,
    ErrorFrame,
    ParsedFrame,
    Reading,
    Rejected,
    parse_device_frame,
)
from telemetry.hub_frames import BadHubFrame, parse_hub_frame
from telemetry.reading import MAX_SEQ
from telemetry.timesync import TimeFrame

NOW = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)
FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-14:00",
            "2026-11-26T05:29:00Z",
            "1764135000",
            "123.5",
            "batch",
            "reading",
            "ack",
            "error",
            "time",
        ]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    ["seq", "ts", "inverter", "grid", "solar", "battery", "extra", "type", "items", "ranges"]
)


def valid_reading(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "ts": (NOW - timedelta(seconds=seq)).isoformat().replace("+00:00", "Z"),
        "grid": {"power_w": -850.0, "phase_voltage_v": [230.8, 231.1, 229.9]},
        "battery": {"soc_pct": 76.5, "state": "charging"},
        "extra": {"bms_cycle_count": 312},
    }


@st.composite
def mutated_reading(draw: st.DrawFn, seq: int) -> Any:
    """A valid reading with a few parts swapped for arbitrary JSON."""
    item: dict[str, Any] = valid_reading(seq)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(KEYS)
        section = item.get(key)
        if isinstance(section, dict) and section and draw(st.booleans()):
            section[draw(st.sampled_from(sorted(section)))] = draw(JSON)
        else:
            item[key] = draw(JSON)
    return item


def deep(text: str, depth: int) -> str:
    """``text`` with one value nested ``depth`` lists deep spliced in (json.dumps cannot)."""
    return text.replace('"power_w": -850.0', '"power_w": ' + "[" * depth + "1" + "]" * depth, 1)


def check_device(parsed: Any) -> ParsedFrame:
    assert isinstance(parsed, ParsedFrame)
    assert all(isinstance(r, Reading) for r in parsed.readings)
    assert all(isinstance(r, Rejected) for r in parsed.rejected)
    for rejected in parsed.rejected:
        assert rejected.seq is None or 0 <= rejected.seq <= MAX_SEQ
        assert isinstance(rejected.reason, str)
    return parsed


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_text_or_bytes_is_a_parsed_frame(text: str | bytes) -> None:
    check_device(parse_device_frame(text, now=NOW))
    assert isinstance(parse_hub_frame(text), (AckFrame, ErrorFrame, TimeFrame, BadHubFrame))


@FUZZ
@given(JSON)
def test_any_json_is_a_parsed_frame(value: Any) -> None:
    text = json.dumps(value)
    check_device(parse_device_frame(text, now=NOW))
    assert isinstance(parse_hub_frame(text), (AckFrame, ErrorFrame, TimeFrame, BadHubFrame))


@settings(FUZZ, max_examples=200)
@given(st.data(), st.integers(1, 20), st.sampled_from([0, 0, 40, 1000, 3000]))
def test_every_batch_item_is_either_a_reading_or_one_rejection(
    data: st.DataObject, count: int, depth: int
) -> None:
    items = [data.draw(mutated_reading(seq)) for seq in range(count)]
    texts = [json.dumps(item) for item in items]
    if depth:
        texts[0] = deep(texts[0], depth)
    frame = '{"type": "batch", "items": [' + ", ".join(texts) + "]}"
    parsed = check_device(parse_device_frame(frame, now=NOW))
    assert parsed.is_batch
    assert len(parsed.readings) + len(parsed.rejected) == len(items) <= MAX_BATCH_ITEMS
    carried = {item.get("seq") for item in items if isinstance(item.get("seq"), int)}
    for rejected in parsed.rejected:
        # A seq is echoed only if an item carried exactly that seq.
        assert rejected.seq is None or rejected.seq in carried


@FUZZ
@given(st.data())
def test_a_single_mutated_reading_is_one_reading_or_one_rejection(data: st.DataObject) -> None:
    parsed = check_device(parse_device_frame(json.dumps(data.draw(mutated_reading(7))), now=NOW))
    assert len(parsed.readings) + len(parsed.rejected) == 1


HUB_FRAMES = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("ack"), "ranges": st.lists(st.lists(SCALARS, max_size=3), max_size=4)}
    ),
    st.fixed_dictionaries({"type": st.just("error"), "seq": SCALARS, "reason": SCALARS}),
    st.fixed_dictionaries({"type": st.just("time"), "id": SCALARS, "hub_ts": SCALARS}),
    st.dictionaries(KEYS, JSON, max_size=4),
)


@FUZZ
@given(HUB_FRAMES, st.sampled_from([0, 0, 0, 300, 5000]))
def test_any_hub_frame_is_typed(frame: dict[str, Any], depth: int) -> None:
    text = json.dumps(frame)
    if depth:
        text = text[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    parsed = parse_hub_frame(text)
    assert isinstance(parsed, (AckFrame, ErrorFrame, TimeFrame, BadHubFrame))
    if isinstance(parsed, AckFrame):
        assert all(0 <= a <= MAX_SEQ and 0 <= b <= MAX_SEQ for a, b in parsed.ranges)
    if isinstance(parsed, ErrorFrame):
        assert parsed.seq is None or 0 <= parsed.seq <= MAX_SEQ
