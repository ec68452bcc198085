"""telemetry/health.py: the health frame's time zone (docs/protocol.md, "Device health")."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from telemetry.health import HealthFrame


@pytest.mark.parametrize(
    "name", ["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "Etc/GMT-14"]
)
def test_iana_names_are_taken_and_sent_back_as_they_are(name: str) -> None:
    frame = HealthFrame.model_validate_json(
        f'{{"type":"health","interval_s":1.0,"timezone":"{name}","devices":[]}}'
    )
    assert frame.timezone == name
    assert f'"timezone":"{name}"' in frame.wire()


@pytest.mark.parametrize(
    "name", ["", "Europe/../etc", "/Europe/Berlin", "Europe Berlin", "a" * 65, "Europe/Berlin\n"]
)
def test_what_no_tz_name_looks_like_is_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        HealthFrame(devices=[], timezone=name)


def test_a_frame_without_a_timezone_is_as_before() -> None:
    frame = HealthFrame(interval_s=1.0, devices=[])
    assert frame.timezone is None
    assert frame.wire() == '{"type":"health","interval_s":1.0,"devices":[]}'
