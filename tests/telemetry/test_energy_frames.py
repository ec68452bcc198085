"""A reading's ``energy`` increments (docs/protocol.md, "Energy"), on plain values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from telemetry import FrameProblem, Reading, parse_device_frame
from telemetry.reading import ENERGY_QUANTITIES, MAX_ENERGY_INCREMENT_WH, EnergyIncrements

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ENERGY = {
    "span_s": 1.0,
    "complete": True,
    "pv_wh": 0.84,
    "import_wh": 0.0,
    "export_wh": 0.21,
    "charge_wh": 0.3,
    "discharge_wh": 0.0,
    "house_wh": 0.33,
}


def frame(**energy: Any) -> str:
    body = {"seq": 7, "ts": "2026-12-03T11:59:59Z", "grid": {"power_w": -210.0}}
    body["energy"] = {**ENERGY, **energy}
    return json.dumps(body)


def test_the_protocol_example_round_trips() -> None:
    parsed = parse_device_frame(frame(), now=NOW)
    assert parsed.rejected == ()
    (reading,) = parsed.readings
    assert reading.energy == EnergyIncrements(**ENERGY)  # type: ignore[arg-type]
    wire = reading.to_wire()
    assert wire["energy"] == ENERGY
    assert Reading.model_validate(wire, context={"now": NOW}) == reading


def test_quantities_are_optional_and_absent_means_unknown() -> None:
    (reading,) = parse_device_frame(
        json.dumps(
            {
                "ts": "2026-12-03T11:59:59Z",
                "grid": {"power_w": 1.0},
                "energy": {"span_s": 2.5, "complete": False, "import_wh": 3},
            }
        ),
        now=NOW,
    ).readings
    assert reading.energy is not None
    assert reading.energy.import_wh == 3.0
    assert reading.energy.pv_wh is None
    assert reading.to_wire()["energy"] == {"span_s": 2.5, "complete": False, "import_wh": 3}
    names = ("pv_wh", "import_wh", "export_wh", "charge_wh", "discharge_wh", "house_wh")
    assert names == ENERGY_QUANTITIES


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"pv_wh": -0.1}, "energy.pv_wh: must be >= 0"),
        ({"house_wh": MAX_ENERGY_INCREMENT_WH * 2}, "energy.house_wh: must be <= 1000000000"),
        ({"export_wh": "0.2"}, "energy.export_wh: Input should be a valid number"),
        ({"charge_wh": True}, "energy.charge_wh: Input should be a valid number"),
        ({"span_s": -1.0}, "energy.span_s: must be >= 0"),
        ({"span_s": "1"}, "energy.span_s: Input should be a valid number"),
        ({"complete": "yes"}, "energy.complete: Input should be a valid boolean"),
        ({"complete": 1}, "energy.complete: Input should be a valid boolean"),
    ],
)
def test_invalid_energy_makes_the_reading_invalid(change: dict[str, Any], reason: str) -> None:
    parsed = parse_device_frame(frame(**change), now=NOW)
    assert parsed.readings == ()
    (rejected,) = parsed.rejected
    assert rejected.problem is FrameProblem.INVALID_READING
    assert rejected.seq == 7
    assert rejected.reason.startswith(reason), rejected.reason


def test_completeness_is_required() -> None:
    body = json.loads(frame())
    del body["energy"]["complete"]
    (rejected,) = parse_device_frame(json.dumps(body), now=NOW).rejected
    assert rejected.reason == "energy.complete: Field required"


@pytest.mark.parametrize("span", [None, 0.0, "absent"])
def test_an_unknown_or_zero_span_keeps_the_reading(span: object) -> None:
    # The edge sends null across a reboot and rounds to the millisecond: losing the
    # reading would lose its energy and every other value in it.
    body = json.loads(frame())
    if span == "absent":
        del body["energy"]["span_s"]
    else:
        body["energy"]["span_s"] = span
    (reading,) = parse_device_frame(json.dumps(body), now=NOW).readings
    assert reading.energy is not None
    assert reading.energy.span_s == (0.0 if span == 0.0 else None)
    assert reading.energy.pv_wh == 0.84


def test_nan_and_infinity_are_refused() -> None:
    text = frame().replace('"pv_wh": 0.84', '"pv_wh": NaN')
    (rejected,) = parse_device_frame(text, now=NOW).rejected
    assert rejected.problem in {FrameProblem.NOT_JSON, FrameProblem.INVALID_READING}


def test_energy_alone_is_not_a_reading() -> None:
    text = json.dumps({"ts": "2026-12-03T11:59:59Z", "energy": ENERGY})
    (rejected,) = parse_device_frame(text, now=NOW).rejected
    assert "needs at least one of inverter, grid, solar, battery" in rejected.reason
