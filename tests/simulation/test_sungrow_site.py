"""The simulated Sungrow site: registered, and showing the plant as an SH inverter does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.profile import decode_map
from drivers.profiles import sungrow
from drivers.registers import RegisterType
from simulation.layout import config_lines, encode_layout
from simulation.plant import Plant
from simulation.sites import SITES, site_layout
from simulation.sungrow_site import INVERTER_UNIT, LAYOUT, sh_sections

IR = RegisterType.INPUT


def _sections(hour: int) -> dict[str, dict[str, object]]:
    start = datetime(2026, 6, 21, hour, tzinfo=UTC)
    state = Plant("sunny", seed=3, start=start).state.sections()
    return {name: dict(values) for name, values in state.items()}


def test_site_is_listed_with_its_config_lines() -> None:
    assert SITES["sungrow"] is LAYOUT
    assert site_layout("sungrow") is LAYOUT
    lines = config_lines(LAYOUT, host="127.0.0.1", port=5020)
    assert 'profile = "sungrow_sh"' in lines
    assert 'role = "inverter"' in lines
    assert "unit = 1" in lines


@pytest.mark.parametrize("hour", [11, 19])
def test_flow_bits_follow_the_plant(hour: int) -> None:
    sections = _sections(hour)
    shown = sh_sections(sections)
    bits = int(float(shown["extra"]["power_flow_status"]))  # type: ignore[arg-type]
    battery_w = float(sections["battery"]["power_w"])  # type: ignore[arg-type]
    grid_w = float(sections["grid"]["power_w"])  # type: ignore[arg-type]
    assert bool(bits & sungrow.FLOW_CHARGING) == (round(battery_w) < 0)
    assert bool(bits & sungrow.FLOW_DISCHARGING) == (round(battery_w) > 0)
    assert bool(bits & sungrow.FLOW_FEED_IN) == (round(grid_w) < 0)
    assert bool(bits & sungrow.FLOW_IMPORT) == (round(grid_w) > 0)
    # The registers carry magnitudes; the plant's own sections are left alone.
    assert shown["battery"]["power_w"] == abs(battery_w)
    assert sections["battery"]["power_w"] == battery_w


def test_image_decodes_to_the_plant_within_resolution() -> None:
    sections = _sections(19)
    image = encode_layout(LAYOUT, sections)[INVERTER_UNIT]
    decoded = decode_map(sungrow.SUNGROW_SH, image)
    assert decoded["battery"]["power_w"] == pytest.approx(sections["battery"]["power_w"], abs=0.5)
    assert decoded["battery"]["state"] == sections["battery"]["state"]
    assert decoded["grid"]["power_w"] == pytest.approx(sections["grid"]["power_w"], abs=0.5)
    assert decoded["grid"]["import_energy_wh"] == pytest.approx(
        sections["grid"]["import_energy_wh"], abs=50.0
    )
    assert decoded["solar"]["pv_power_w"] == pytest.approx(sections["solar"]["pv_power_w"], abs=0.5)
    # Unfilled documented registers read "unavailable": phase B/C voltage of a single-phase unit.
    assert image[IR][5019] == 0xFFFF
    assert image[IR][5020] == 0xFFFF
    # The identity block the scan reads: SH5K-20, 5.0 kW, single phase.
    assert (image[IR][4999], image[IR][5000], image[IR][5001]) == (sungrow.SH5K_20, 50, 0)
