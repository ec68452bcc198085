from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hub.connections import reading_frame
from telemetry import Reading, dashboard_reading

RECEIVED = datetime(2026, 11, 26, 5, 30, 0, 131000, tzinfo=UTC)

READINGS = [
    {"ts": "2026-11-26T05:30:00Z", "grid": {"power_w": -850.0}},
    {
        "seq": 1042,
        "ts": "2026-11-26T06:30:00.123+01:00",
        "inverter": {"ac_power_w": 3120.5, "energy_total_wh": 8123400, "state": "mppt"},
        "grid": {"phase_voltage_v": [230.8, 231.1, 229.9], "power_factor": 0.98},
        "solar": {"pv_power_w": 0},
        "battery": {"soc_pct": 76.5, "state": 'charging \\ "quoted" ☀'},
        "extra": {"bms_cycle_count": 312, "odd.name-1": 1e-7},
    },
    {"seq": 0, "ts": "2026-11-26T05:30:00.000001Z", "battery": {"state": "idle"}},
]


@pytest.mark.parametrize("raw", READINGS)
@pytest.mark.parametrize("device_id", ["ems_001", "a.b-c_D"])
def test_reading_frame_is_dashboard_reading_encoded(raw: dict[str, object], device_id: str) -> None:
    reading = Reading.model_validate(raw, context={"now": datetime(2026, 11, 26, 6, 0, tzinfo=UTC)})
    assert json.loads(reading_frame(device_id, reading, RECEIVED)) == dashboard_reading(
        device_id, reading, RECEIVED
    )
