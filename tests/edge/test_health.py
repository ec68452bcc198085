"""Device health: fresh values only from a device that reads, backoff for one that fails."""

from __future__ import annotations

import json
import random

from edge.health import DeviceHealth, DeviceState, Transition, health_frame
from telemetry.backoff import BackoffPolicy
from telemetry.health import HEALTH_FRAME_PREFIX, HealthFrame

VALUES = {"grid": {"power_w": 100.0}}


def test_values_are_fresh_only_while_ok_and_young() -> None:
    health = DeviceHealth("meter", BackoffPolicy(1.0, 8.0))
    assert health.fresh(0.0, 5.0) is None
    assert health.succeeded(VALUES, 10.0) == Transition("meter", DeviceState.OK, "")
    assert health.succeeded(VALUES, 11.0) is None  # no change, no transition
    snapshot = health.fresh(12.0, 5.0)
    assert snapshot is not None
    assert (snapshot.sections, snapshot.read_mono) == (VALUES, 11.0)
    assert health.fresh(16.0, 5.0) == snapshot
    assert health.fresh(16.1, 5.0) is None  # stale: never reported as fresh


def test_a_failing_device_is_left_out_and_backs_off() -> None:
    health = DeviceHealth("meter", BackoffPolicy(1.0, 8.0), random.Random(3))
    health.succeeded(VALUES, 0.0)
    assert health.failed("unit 2: no response", 1.0) == Transition(
        "meter", DeviceState.FAILING, "unit 2: no response", DeviceState.OK
    )
    assert health.fresh(1.0, 5.0) is None  # its last values no longer count
    waits = []
    now = 1.0
    for _ in range(6):
        waits.append(health.next_attempt_mono - now)
        assert not health.due(now)
        now = health.next_attempt_mono
        assert health.due(now)
        assert health.failed("again", now) is None
    steps = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(step / 2 <= wait <= step for wait, step in zip(waits, steps, strict=True))
    assert health.failures == 7
    assert health.succeeded(VALUES, now).state is DeviceState.OK  # type: ignore[union-attr]
    assert health.failures == 0
    assert health.due(now)


def test_the_health_frame_gives_each_device_its_state_and_ages() -> None:
    meter = DeviceHealth("meter", BackoffPolicy(1.0, 8.0))
    inverter = DeviceHealth("inverter", BackoffPolicy(1.0, 8.0))
    bms = DeviceHealth("bms", BackoffPolicy(1.0, 8.0))
    meter.succeeded(VALUES, 100.0)
    inverter.succeeded(VALUES, 100.0)
    inverter.succeeded(VALUES, 101.0)
    inverter.failed("unit 1: connection refused", 102.5)
    inverter.failed("unit 1: connection refused", 104.0)  # still failing: since 102.5
    frame = health_frame([(meter, "grid"), (inverter, "inverter"), (bms, "battery")], 110.0, 1.0)
    wire = json.loads(frame.wire())
    assert frame.wire().startswith(HEALTH_FRAME_PREFIX)
    assert wire == {
        "type": "health",
        "interval_s": 1.0,
        "devices": [
            {"name": "meter", "role": "grid", "state": "ok", "for_s": 10.0,
             "last_ok_age_s": 10.0, "error": ""},
            {"name": "inverter", "role": "inverter", "state": "failing", "for_s": 7.5,
             "last_ok_age_s": 9.0, "error": "unit 1: connection refused"},
            {"name": "bms", "role": "battery", "state": "unknown", "for_s": 0.0, "error": ""},
        ],
    }  # fmt: skip
    assert HealthFrame.model_validate_json(frame.wire()) == frame  # what the hub parses
