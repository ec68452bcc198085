"""The wire models and the device-frame parser, on plain values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telemetry import (
    NUMERIC_FIELDS,
    FrameProblem,
    Reading,
    batch_frame,
    dashboard_reading,
    format_ts,
    is_valid_device_id,
    parse_device_frame,
    range_contains,
    seq_ranges,
)

NOW = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)


def reading(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": 1042,
        "ts": "2026-11-26T05:30:00.123Z",
        "inverter": {"ac_power_w": 3120.5, "ac_frequency_hz": 50.01, "state": "mppt"},
        "grid": {"power_w": -850.0, "phase_power_w": [-300.0, -250.0, -300.0]},
        "solar": {"pv_power_w": 3230.0},
        "battery": {"soc_pct": 76.5, "power_w": -1200.0, "state": "charging"},
        "extra": {"bms_cycle_count": 312},
    }
    base.update(overrides)
    return base


def parse(frame: Any) -> Any:
    return parse_device_frame(json.dumps(frame), now=NOW)


def test_protocol_example_is_valid_and_round_trips() -> None:
    parsed = parse(reading())
    assert parsed.rejected == ()
    (only,) = parsed.readings
    assert only.seq == 1042
    assert only.ts == datetime(2026, 11, 26, 5, 30, 0, 123000, tzinfo=UTC)
    wire = only.to_wire()
    assert wire["ts"] == "2026-11-26T05:30:00.123Z"
    assert wire["battery"] == {"soc_pct": 76.5, "power_w": -1200.0, "state": "charging"}
    assert Reading.model_validate(wire, context={"now": NOW}) == only


def test_offset_is_normalised_to_utc() -> None:
    (only,) = parse(reading(ts="2026-11-26T06:30:00+01:00")).readings
    assert only.to_wire()["ts"] == "2026-11-26T05:30:00Z"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"battery": {"soc_pct": 101}}, "battery.soc_pct: must be <= 100"),
        ({"battery": {"soc_pct": -1}}, "battery.soc_pct: must be >= 0"),
        ({"grid": {"frequency_hz": 39.9}}, "grid.frequency_hz: must be >= 40"),
        ({"inverter": {"ac_power_w": 10_000_001}}, "inverter.ac_power_w: must be <= 10000000"),
        ({"grid": {"import_energy_wh": -1}}, "grid.import_energy_wh: must be >= 0"),
        ({"solar": {"pv_power_w": -5}}, "solar.pv_power_w: must be >= 0"),
        ({"grid": {"power_w": "lots"}}, "grid.power_w"),
        ({"ts": "2026-11-26T05:30:00"}, "ts: must carry a UTC offset"),
        ({"ts": "2019-12-31T23:59:59Z"}, "ts: is before 2020-01-01"),
        ({"ts": "2026-11-26T05:35:01Z"}, "ts: is more than 5 minutes ahead"),
        ({"seq": -1}, "seq"),
        ({"seq": "7"}, "seq"),
    ],
)
def test_invalid_readings_are_rejected_with_a_reason(
    overrides: dict[str, Any], reason: str
) -> None:
    parsed = parse(reading(**overrides))
    assert parsed.readings == ()
    (rejected,) = parsed.rejected
    assert rejected.problem is FrameProblem.INVALID_READING
    assert rejected.reason.startswith(reason)


def test_nan_and_infinity_are_invalid() -> None:
    for bad in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(reading()).replace("76.5", bad)
        parsed = parse_device_frame(text, now=NOW)
        assert parsed.readings == ()
        assert parsed.rejected[0].reason.startswith("battery.soc_pct")
        assert parsed.rejected[0].seq == 1042


def test_a_reading_needs_a_section_and_unknown_keys_are_ignored() -> None:
    bare = {"seq": 1, "ts": "2026-11-26T05:30:00Z", "weather": "fine"}
    assert parse(bare).rejected[0].problem is FrameProblem.INVALID_READING
    (only,) = parse({**bare, "grid": {"power_w": 1.0, "colour": "red"}}).readings
    assert only.to_wire() == {"seq": 1, "ts": "2026-11-26T05:30:00Z", "grid": {"power_w": 1.0}}


def test_a_reading_without_seq_is_valid() -> None:
    frame = reading()
    del frame["seq"]
    (only,) = parse(frame).readings
    assert only.seq is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"\x00\x01", FrameProblem.BINARY),
        ("{not json", FrameProblem.NOT_JSON),
        ("[1, 2]", FrameProblem.NOT_AN_OBJECT),
        ('{"type": "subscribe"}', FrameProblem.NOT_AN_OBJECT),
        ('{"type": "batch", "items": []}', FrameProblem.BAD_BATCH),
        ('{"type": "batch"}', FrameProblem.BAD_BATCH),
        ("x" * (1024 * 1024 + 1), FrameProblem.TOO_LARGE),
    ],
)
def test_bad_frames_are_named(text: str | bytes, problem: FrameProblem) -> None:
    parsed = parse_device_frame(text, now=NOW)
    assert parsed.readings == ()
    assert parsed.rejected[0].problem is problem


def test_a_batch_keeps_its_good_items_and_names_the_bad_ones() -> None:
    good = [reading(seq=s, ts=format_ts(NOW - timedelta(seconds=10 - s))) for s in range(5)]
    bad = reading(seq=5, battery={"soc_pct": 200})
    unsequenced = reading()
    del unsequenced["seq"]
    parsed = parse_device_frame(batch_frame([*good, bad, unsequenced]), now=NOW)
    assert parsed.is_batch
    assert [r.seq for r in parsed.readings] == [0, 1, 2, 3, 4]
    problems = [(r.problem, r.seq) for r in parsed.rejected]
    assert problems == [
        (FrameProblem.INVALID_READING, 5),
        (FrameProblem.BATCH_ITEM_WITHOUT_SEQ, None),
    ]


def test_a_batch_holds_at_most_1000_items() -> None:
    items = [reading(seq=s) for s in range(1001)]
    with pytest.raises(ValueError, match="1 to 1000"):
        batch_frame(items)
    text = json.dumps({"type": "batch", "items": items})
    assert parse_device_frame(text, now=NOW).rejected[0].problem is FrameProblem.BAD_BATCH


def test_dashboard_frame_carries_the_reading_and_when_it_arrived() -> None:
    (only,) = parse(reading()).readings
    frame = dashboard_reading("ems_001", only, NOW)
    assert frame["type"] == "reading"
    assert frame["device_id"] == "ems_001"
    assert frame["received_at"] == "2026-11-26T05:30:00Z"
    assert frame["seq"] == 1042
    assert frame["grid"]["power_w"] == -850.0


def test_seq_ranges() -> None:
    assert seq_ranges([]) == []
    assert seq_ranges([7]) == [(7, 7)]
    assert seq_ranges([5, 3, 4, 9, 10, 4]) == [(3, 5), (9, 10)]
    assert range_contains([(3, 5), (9, 10)], 9)
    assert not range_contains([(3, 5), (9, 10)], 6)


def test_device_ids() -> None:
    assert is_valid_device_id("ems_001")
    assert is_valid_device_id("A.b-C_9")
    assert is_valid_device_id("x" * 64)
    for bad in ("", "x" * 65, "a b", "a/b", "é", "a\n"):
        assert not is_valid_device_id(bad)


def test_numeric_fields_cover_every_float_field() -> None:
    assert ("battery", "soc_pct") in NUMERIC_FIELDS
    assert ("grid", "power_w") in NUMERIC_FIELDS
    assert ("battery", "state") not in NUMERIC_FIELDS
    assert ("grid", "phase_power_w") not in NUMERIC_FIELDS


def test_fast_and_careful_paths_agree() -> None:
    items = [reading(seq=s, ts=format_ts(NOW - timedelta(seconds=10 - s))) for s in range(3)]
    fast = parse_device_frame(batch_frame(items), now=NOW)
    careful = parse_device_frame(json.dumps({"items": items, "type": "batch"}), now=NOW)
    assert fast == careful
    assert len(fast.readings) == 3
    typed = parse_device_frame(json.dumps({**reading(), "type": "reading"}), now=NOW)
    assert typed == parse_device_frame(json.dumps(reading()), now=NOW)
