"""The `devices` extension of a reading: each device's own values beside the totals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from telemetry import FrameProblem, Reading, dashboard_reading, parse_device_frame
from telemetry.reading import MAX_DEVICES

NOW = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)
EAST = {"role": "inverter", "inverter": {"ac_power_w": 2000.0}, "extra": {"pv1_voltage_v": 350}}
HEAT_PUMP = {"role": "grid", "total": False, "grid": {"power_w": 1200.0}}


def reading(devices: Any, seq: int = 7) -> dict[str, Any]:
    return {
        "seq": seq,
        "ts": "2026-11-26T05:29:59Z",
        "inverter": {"ac_power_w": 2000.0},
        "devices": devices,
    }


def test_a_reading_carries_each_device_and_gives_it_back_on_the_wire() -> None:
    text = json.dumps(reading({"east": EAST, "heat_pump": HEAT_PUMP}))
    parsed = parse_device_frame(text, now=NOW)
    assert parsed.rejected == ()
    (only,) = parsed.readings
    assert only.devices is not None
    assert only.devices["heat_pump"].total is False
    assert only.devices["east"].total is True  # the default
    wire = only.to_wire()
    assert wire["devices"] == {
        "east": {**EAST, "total": True},
        "heat_pump": HEAT_PUMP,
    }
    # A dashboard receives it with the rest of the reading.
    assert dashboard_reading("site", only, NOW)["devices"] == wire["devices"]


def test_readers_of_today_s_frames_are_unaffected() -> None:
    (plain,) = parse_device_frame(json.dumps(reading(None) | {"devices": None}), now=NOW).readings
    assert "devices" not in plain.to_wire()


@pytest.mark.parametrize(
    ("devices", "reason"),
    [
        ({"heat pump": HEAT_PUMP}, "devices.heat pump.[key]: names are 1 to 64 characters"),
        ({"x": {**HEAT_PUMP, "role": "load"}}, "devices.x.role: Input should be"),
        ({"x": {"role": "grid"}}, "devices.x: a device needs at least one section"),
        ({"x": {"role": "grid", "grid": {}}}, "devices.x: a section needs at least one value"),
        ({"x": {**HEAT_PUMP, "total": 0}}, "devices.x.total: Input should be a valid boolean"),
        ({"x": {"role": "grid", "grid": {"power_w": 2e7}}}, "devices.x.grid.power_w: must be <="),
        ({"x": {"role": "grid", "grid": {"power_w": "1"}}}, "devices.x.grid.power_w:"),
        ([EAST], "devices: Input should be a valid dictionary"),
        (
            {f"d{i}": EAST for i in range(MAX_DEVICES + 1)},
            "devices: Dictionary should have at most 64 items",
        ),
    ],
)
def test_a_bad_entry_refuses_its_reading_only(devices: Any, reason: str) -> None:
    good = reading({"east": EAST}, seq=1)
    bad = reading(devices, seq=2)
    parsed = parse_device_frame(json.dumps({"type": "batch", "items": [good, bad]}), now=NOW)
    assert [r.seq for r in parsed.readings] == [1]
    (rejected,) = parsed.rejected
    assert rejected.problem is FrameProblem.INVALID_READING
    assert rejected.seq == 2
    assert rejected.reason.startswith(reason), rejected.reason


def test_the_model_accepts_what_the_edge_composes() -> None:
    Reading.model_validate(
        {"ts": "2026-11-26T05:29:59Z", "grid": {"power_w": 1.0}, "devices": {"m": HEAT_PUMP}},
        context={"now": NOW},
    )
