"""The simulated SolaX site: registered, and showing the plant as an X1-Hybrid does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.profile import decode_map
from drivers.profiles import solax
from drivers.registers import RegisterType
from simulation.layout import config_lines, encode_layout
from simulation.plant import Plant
from simulation.sites import SITES, site_layout
from simulation.solax_site import INVERTER_UNIT, LAYOUT, x1_sections

IR, H = RegisterType.INPUT, RegisterType.HOLDING


def _sections(hour: int) -> dict[str, dict[str, object]]:
    start = datetime(2026, 6, 21, hour, tzinfo=UTC)
    state = Plant("sunny", seed=3, start=start).state.sections()
    return {name: dict(values) for name, values in state.items()}


def test_site_is_listed_with_its_config_lines() -> None:
    assert SITES["solax"] is LAYOUT
    assert site_layout("solax") is LAYOUT
    lines = config_lines(LAYOUT, host="127.0.0.1", port=5020)
    assert 'profile = "solax_x1_hybrid"' in lines
    assert 'role = "inverter"' in lines


@pytest.mark.parametrize("hour", [11, 19])
def test_registers_carry_solax_signs_and_decode_to_the_plant(hour: int) -> None:
    sections = _sections(hour)
    image = encode_layout(LAYOUT, sections)[INVERTER_UNIT]
    battery_w = float(sections["battery"]["power_w"])  # type: ignore[arg-type]
    grid_w = float(sections["grid"]["power_w"])  # type: ignore[arg-type]
    # 0x0016 Batpower_Charge1 (S16) > 0 charging; 0x0046 feedin_power (S32, LSB first) > 0 export.
    raw_battery = image[IR][0x0016] - (0x10000 if image[IR][0x0016] & 0x8000 else 0)
    assert raw_battery == -round(battery_w)
    feedin = image[IR][0x0046] | image[IR][0x0047] << 16
    feedin -= 0x1_0000_0000 if feedin & 0x8000_0000 else 0
    assert feedin == -round(grid_w)
    decoded = decode_map(solax.SOLAX_X1, image)
    assert decoded["battery"]["power_w"] == pytest.approx(battery_w, abs=0.5)
    assert decoded["grid"]["power_w"] == pytest.approx(grid_w, abs=0.5)
    assert decoded["battery"]["state"] == sections["battery"]["state"]


def test_shown_sections_leave_the_plant_alone() -> None:
    sections = _sections(11)
    shown = x1_sections(sections)
    assert shown["inverter"]["state"] == "normal"
    assert sections["inverter"]["state"] == "mppt"
    assert shown["extra"]["pv1_power_w"] == sections["solar"]["pv_power_w"]
