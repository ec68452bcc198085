"""The self-consumption power flow balances and follows the policy's order."""

from __future__ import annotations

import itertools

import pytest

from simulation.plant.converters import ChargerSpec, InverterSpec
from simulation.plant.dispatch import PowerFlow, dispatch

CHARGER = ChargerSpec().losses
INVERTER = InverterSpec()


def _flow(
    pv: float,
    load: float,
    charge_limit: float = 5000.0,
    discharge_limit: float = 5000.0,
    charger_max: float = 3200.0,
) -> PowerFlow:
    return dispatch(
        pv_available_w=pv,
        load_w=load,
        charger=CHARGER,
        charger_max_out_w=charger_max,
        inverter=INVERTER.losses,
        inverter_rated_w=INVERTER.rated_power_w,
        battery_charge_limit_w=charge_limit,
        battery_discharge_limit_w=discharge_limit,
    )


def _assert_balanced(flow: PowerFlow) -> None:
    scale = max(1.0, flow.pv_w, flow.load_w, abs(flow.battery_w), flow.inverter_dc_w)
    tolerance = 1e-9 * scale
    assert flow.pv_w - flow.charger_loss_w - flow.charger_out_w == pytest.approx(0, abs=tolerance)
    assert flow.charger_out_w + flow.battery_w - flow.inverter_dc_w == pytest.approx(
        0, abs=tolerance
    )
    assert flow.inverter_dc_w - flow.inverter_ac_w - flow.inverter_loss_w == pytest.approx(
        0, abs=tolerance
    )
    assert flow.inverter_ac_w + flow.grid_w - flow.load_w == pytest.approx(0, abs=tolerance)


PVS = (0.0, 10.0, 300.0, 1500.0, 3300.0, 8000.0)
LOADS = (0.0, 5.0, 200.0, 1200.0, 4000.0, 9000.0)
LIMITS = (0.0, 30.0, 800.0, 6000.0)


@pytest.mark.parametrize(
    ("charge_limit", "discharge_limit"), list(itertools.product(LIMITS, LIMITS))
)
def test_every_combination_balances_and_respects_every_limit(
    charge_limit: float, discharge_limit: float
) -> None:
    for pv, load in itertools.product(PVS, LOADS):
        flow = _flow(pv, load, charge_limit, discharge_limit)
        _assert_balanced(flow)
        assert 0.0 <= flow.pv_w <= pv * (1 + 1e-12)
        assert -charge_limit * (1 + 1e-12) <= flow.battery_w <= discharge_limit * (1 + 1e-12)
        assert 0.0 <= flow.inverter_ac_w <= INVERTER.rated_power_w
        assert flow.charger_out_w <= 3200.0


def test_surplus_charges_the_battery_before_anything_is_exported() -> None:
    flow = _flow(pv=2000.0, load=300.0)
    assert flow.inverter_ac_w == pytest.approx(300.0)
    assert flow.grid_w == pytest.approx(0.0)
    assert flow.battery_w < 0.0
    assert flow.curtailed_w == pytest.approx(0.0, abs=1e-9)


def test_a_full_battery_sends_the_surplus_to_the_grid() -> None:
    flow = _flow(pv=2000.0, load=300.0, charge_limit=0.0)
    assert flow.battery_w == pytest.approx(0.0, abs=1e-9)
    assert flow.grid_w < -1000.0
    assert flow.inverter_ac_w > 300.0


def test_what_neither_battery_nor_inverter_takes_is_curtailed() -> None:
    flow = dispatch(
        pv_available_w=6000.0,
        load_w=100.0,
        charger=CHARGER,
        charger_max_out_w=10_000.0,
        inverter=INVERTER.losses,
        inverter_rated_w=INVERTER.rated_power_w,
        battery_charge_limit_w=200.0,
        battery_discharge_limit_w=5000.0,
    )
    assert flow.inverter_ac_w == INVERTER.rated_power_w
    assert flow.inverter_limited
    assert flow.battery_w == pytest.approx(-200.0)
    # The charger delivers just the inverter's full-load input plus the battery's 200 W.
    needed = CHARGER.input_for(INVERTER.losses.input_for(INVERTER.rated_power_w) + 200.0)
    assert flow.curtailed_w == pytest.approx(6000.0 - needed)
    assert flow.curtailed_w > 0.0
    _assert_balanced(flow)


def test_a_deficit_is_covered_by_the_battery_then_by_the_grid() -> None:
    covered = _flow(pv=0.0, load=800.0)
    assert covered.battery_w == pytest.approx(INVERTER.losses.input_for(800.0))
    assert covered.grid_w == pytest.approx(0.0)
    limited = _flow(pv=0.0, load=800.0, discharge_limit=300.0)
    assert limited.battery_w == pytest.approx(300.0)
    assert limited.grid_w == pytest.approx(800.0 - INVERTER.losses.output_for(300.0))
    empty = _flow(pv=0.0, load=800.0, discharge_limit=0.0)
    assert empty.battery_w == 0.0
    assert empty.grid_w == 800.0


def test_the_charger_clips_at_its_rated_output() -> None:
    flow = _flow(pv=4000.0, load=0.0, charger_max=2000.0)
    assert flow.charger_out_w == pytest.approx(2000.0)
    assert flow.pv_w == pytest.approx(CHARGER.input_for(2000.0))
    assert flow.curtailed_w > 0.0


def test_negative_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        _flow(pv=-1.0, load=0.0)
