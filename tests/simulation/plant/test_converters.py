"""Converter losses and the PV array's operating points."""

from __future__ import annotations

import pytest

from simulation.plant.converters import ChargerSpec, InverterSpec, LossModel
from simulation.plant.pv import PvArraySpec, maximum_power_point, operating_point

CHARGER = ChargerSpec()
INVERTER = InverterSpec()
ARRAY = PvArraySpec()


@pytest.mark.parametrize("model", [CHARGER.losses, INVERTER.losses])
def test_input_and_output_are_exact_inverses(model: LossModel) -> None:
    for output in (0.5, 10.0, 123.4, 1000.0, 4999.9):
        assert model.output_for(model.input_for(output)) == pytest.approx(output, rel=1e-12)
    for input_w in (model.constant_w + 0.01, 50.0, 2500.0, 6000.0):
        assert model.input_for(model.output_for(input_w)) == pytest.approx(input_w, rel=1e-12)


def test_a_converter_does_nothing_with_less_than_its_constant_loss() -> None:
    model = INVERTER.losses
    assert model.output_for(model.constant_w) == 0.0
    assert model.output_for(0.0) == 0.0
    assert model.input_for(0.0) == 0.0
    assert model.loss(0.0) == 0.0


def test_efficiency_curves_match_their_datasheets() -> None:
    charger = [CHARGER.losses.efficiency(p) for p in (100.0, 500.0, 1500.0, 3000.0)]
    assert max(charger) <= 0.98  # Tracer-AN: "max. conversion efficiency 98 %"
    assert min(charger) >= 0.95
    inverter = INVERTER.losses
    half_load = inverter.efficiency(INVERTER.rated_power_w / 2)
    assert 0.96 <= half_load <= 0.98
    assert inverter.efficiency(50.0) < 0.8  # the constant loss dominates at low load
    assert inverter.efficiency(INVERTER.rated_power_w) < half_load


def test_array_gives_its_peak_power_at_standard_test_conditions() -> None:
    # NOCT model: cell = air + (NOCT - 20) / 800 * G, so 25 °C cells at 1000 W/m²
    # need air at 25 - 31.25 °C.
    air_c = 25.0 - (ARRAY.noct_c - 20.0) / 800.0 * 1000.0
    mpp = maximum_power_point(ARRAY, 1000.0, air_c)
    assert mpp.cell_temperature_c == pytest.approx(25.0)
    assert mpp.power_w == pytest.approx(ARRAY.peak_power_w)
    assert mpp.vmp_v == pytest.approx(ARRAY.modules_in_series * ARRAY.module_vmp_stc_v)
    assert mpp.voc_v == pytest.approx(ARRAY.modules_in_series * ARRAY.module_voc_stc_v)


def test_hot_cells_derate_power_by_the_temperature_coefficient() -> None:
    cool = maximum_power_point(ARRAY, 800.0, 10.0)
    hot = maximum_power_point(ARRAY, 800.0, 35.0)
    ratio = (1 + ARRAY.gamma_pmp_per_k * (hot.cell_temperature_c - 25)) / (
        1 + ARRAY.gamma_pmp_per_k * (cool.cell_temperature_c - 25)
    )
    assert hot.power_w == pytest.approx(cool.power_w * ratio)
    assert hot.power_w < cool.power_w
    assert hot.voc_v < cool.voc_v


def test_open_circuit_voltage_stays_below_the_chargers_limit_on_a_cold_bright_day() -> None:
    cold = maximum_power_point(ARRAY, 1100.0, -15.0)
    assert cold.voc_v < CHARGER.max_pv_voltage_v


def test_no_light_no_power() -> None:
    dark = maximum_power_point(ARRAY, 0.0, 10.0)
    assert dark.power_w == 0.0
    assert dark.voc_v == 0.0
    point = operating_point(dark, 0.0)
    assert (point.power_w, point.current_a) == (0.0, 0.0)


def test_curtailment_moves_the_array_towards_open_circuit() -> None:
    mpp = maximum_power_point(ARRAY, 700.0, 20.0)
    full = operating_point(mpp, mpp.power_w)
    half = operating_point(mpp, mpp.power_w / 2)
    idle = operating_point(mpp, 0.0)
    assert full.voltage_v == pytest.approx(mpp.vmp_v)
    assert full.voltage_v < half.voltage_v < idle.voltage_v == mpp.voc_v
    assert half.voltage_v * half.current_a == pytest.approx(mpp.power_w / 2)
    assert idle.current_a == 0.0
    with pytest.raises(ValueError, match="cannot draw"):
        operating_point(mpp, mpp.power_w * 1.01)
