"""telemetry/energy_increments.py on plain values: sequences computed by hand, to the Wh."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pytest

from telemetry.energy_increments import (
    CounterSpec,
    EnergyEvent,
    EnergyIntegrator,
    EnergySettings,
    Increments,
    IntegratorState,
    Quantity,
    signed_parts,
)

Sections = Mapping[str, Mapping[str, object]]


def run(
    integrator: EnergyIntegrator, samples: Iterable[tuple[float, Sections]]
) -> list[Increments]:
    out = []
    for t, sections in samples:
        result = integrator.step(t, sections)
        if result is not None:
            out.append(result)
    return out


def total(results: list[Increments], quantity: Quantity) -> float:
    return sum(r.wh.get(quantity, 0.0) for r in results)


def house(results: list[Increments]) -> float:
    return sum(r.house_wh or 0.0 for r in results)


def test_one_kilowatt_for_a_day_at_1_hz_is_24000_wh() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    results = run(integrator, ((float(t), {"grid": {"power_w": 1000.0}}) for t in range(86_401)))
    assert len(results) == 86_400
    # Each second is 0.277777... Wh, sent to the mWh with the rounding carried on.
    assert {r.wh[Quantity.IMPORT] for r in results} == {0.278, 0.277}
    assert total(results, Quantity.IMPORT) == pytest.approx(24_000.0, abs=0.001)
    assert total(results, Quantity.EXPORT) == 0.0
    assert all(r.complete and r.span_s == 1.0 for r in results)


def test_export_and_charge_are_the_negative_parts() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    sections = {"grid": {"power_w": -3600.0}, "battery": {"power_w": -1800.0}}
    results = run(integrator, ((float(t), sections) for t in range(0, 3601, 2)))
    assert total(results, Quantity.EXPORT) == pytest.approx(3600.0, abs=0.001)
    assert total(results, Quantity.IMPORT) == 0.0
    assert total(results, Quantity.CHARGE) == pytest.approx(1800.0, abs=0.001)
    assert total(results, Quantity.DISCHARGE) == 0.0


def test_a_sign_change_between_samples_is_split_where_the_line_crosses_zero() -> None:
    # From +1000 W to -3000 W over 4 s: zero after 1 s; 1000*1/2 = 500 Ws, 3000*3/2 = 4500 Ws.
    positive, negative = signed_parts(1000.0, -3000.0, 4.0)
    assert positive == pytest.approx(500 / 3600)
    assert negative == pytest.approx(4500 / 3600)
    assert signed_parts(-3000.0, 1000.0, 4.0) == pytest.approx((500 / 3600, 4500 / 3600))
    # A ramp: the trapezoid is exact (0 -> 3600 W over an hour = 1800 Wh).
    integrator = EnergyIntegrator(EnergySettings())
    ramp = ((float(t), {"solar": {"pv_power_w": float(t)}}) for t in range(0, 3601))
    assert total(run(integrator, ramp), Quantity.PV) == pytest.approx(1800.0, abs=0.001)


def test_a_counter_wins_over_the_power() -> None:
    # The counter says 10 Wh per second, the power says 1 kW (0.278 Wh): the counter counts.
    integrator = EnergyIntegrator(EnergySettings())
    samples = [
        (float(t), {"grid": {"power_w": 1000.0, "import_energy_wh": 500.0 + 10 * t}})
        for t in range(11)
    ]
    results = run(integrator, samples)
    assert total(results, Quantity.IMPORT) == pytest.approx(100.0)
    # No export counter: export is integrated from the power (none, as it imports).
    assert total(results, Quantity.EXPORT) == 0.0


def test_a_counter_reset_mid_day_is_a_new_baseline_and_the_power_bridges_it() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    samples = []
    counter = 1_000_000.0
    for t in range(0, 7201):
        if t == 3600:
            counter = 0.0  # the meter was reset
        samples.append((float(t), {"grid": {"power_w": 3600.0, "import_energy_wh": counter}}))
        counter += 1.0  # 3600 W is 1 Wh per second
    results = run(integrator, samples)
    # 3599 counted seconds before, 1 integrated second at the reset, 3600 after.
    assert total(results, Quantity.IMPORT) == pytest.approx(7200.0, abs=0.001)
    assert integrator.counts[EnergyEvent.COUNTER_RESET] == 1
    assert all(r.complete for r in results)
    assert all(r.wh[Quantity.IMPORT] >= 0 for r in results)


def test_a_reset_without_power_is_unmeasured_never_negative() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    results = run(
        integrator,
        [
            (0.0, {"grid": {"import_energy_wh": 5000.0}}),
            (1.0, {"grid": {"import_energy_wh": 5001.0}}),
            (2.0, {"grid": {"import_energy_wh": 3.0}}),  # reset
            (3.0, {"grid": {"import_energy_wh": 4.5}}),
        ],
    )
    assert [r.wh[Quantity.IMPORT] for r in results] == [1.0, 0.0, 1.5]
    assert [r.complete for r in results] == [True, False, True]
    assert EnergyEvent.COUNTER_RESET in results[1].events


def test_a_u32_rollover_is_counted_through_where_the_width_is_known() -> None:
    wrap = 2**32 * 10.0  # EPEver: u32 in 10 Wh steps
    spec = CounterSpec(wrap_wh=wrap, step_wh=10.0)
    integrator = EnergyIntegrator(EnergySettings(counters={Quantity.PV: spec}))
    results = run(
        integrator,
        [
            (0.0, {"solar": {"energy_total_wh": wrap - 20.0}}),
            (1.0, {"solar": {"energy_total_wh": wrap - 10.0}}),
            (2.0, {"solar": {"energy_total_wh": 0.0}}),
            (3.0, {"solar": {"energy_total_wh": 10.0}}),
        ],
    )
    assert [r.wh[Quantity.PV] for r in results] == [10.0, 10.0, 10.0]
    assert integrator.counts[EnergyEvent.COUNTER_ROLLOVER] == 1
    assert all(r.complete for r in results)
    # The same without the width known: a reset, the second unmeasured.
    unknown = EnergyIntegrator(EnergySettings())
    again = run(
        unknown,
        [
            (0.0, {"solar": {"energy_total_wh": wrap - 10.0}}),
            (1.0, {"solar": {"energy_total_wh": 0.0}}),
        ],
    )
    assert again[0].wh[Quantity.PV] == 0.0
    assert not again[0].complete
    assert unknown.counts[EnergyEvent.COUNTER_RESET] == 1


def test_a_replaced_meter_with_a_higher_count_is_rejected_and_counted() -> None:
    # Max 100 kW over 1 s is 27.8 Wh, plus a step of 1 Wh: 15 MWh in a second is a new meter.
    spec = CounterSpec(step_wh=1.0)
    integrator = EnergyIntegrator(EnergySettings(counters={Quantity.IMPORT: spec}))
    results = run(
        integrator,
        [
            (0.0, {"grid": {"power_w": 1800.0, "import_energy_wh": 1000.0}}),
            (1.0, {"grid": {"power_w": 1800.0, "import_energy_wh": 1000.5}}),
            (2.0, {"grid": {"power_w": 1800.0, "import_energy_wh": 15_000_000.0}}),
            (3.0, {"grid": {"power_w": 1800.0, "import_energy_wh": 15_000_000.5}}),
        ],
    )
    assert [r.wh[Quantity.IMPORT] for r in results] == [0.5, 0.5, 0.5]
    assert integrator.counts[EnergyEvent.COUNTER_REJECTED] == 1
    assert all(r.complete for r in results)


def test_a_gap_longer_than_the_bound_is_not_integrated_and_incomplete() -> None:
    integrator = EnergyIntegrator(EnergySettings(max_gap_s=10.0))
    results = run(
        integrator,
        [
            (0.0, {"grid": {"power_w": 3600.0}}),
            (1.0, {"grid": {"power_w": 3600.0}}),
            (61.0, {"grid": {"power_w": 3600.0}}),  # a minute with no reading
            (62.0, {"grid": {"power_w": 3600.0}}),
        ],
    )
    assert [r.wh[Quantity.IMPORT] for r in results] == [1.0, 0.0, 1.0]
    assert [r.complete for r in results] == [True, False, True]
    assert [r.span_s for r in results] == [1.0, 60.0, 1.0]


def test_a_gap_shorter_than_the_bound_is_bridged() -> None:
    integrator = EnergyIntegrator(EnergySettings(max_gap_s=10.0))
    results = run(
        integrator,
        [
            (0.0, {"grid": {"power_w": 3600.0}}),
            (8.0, {"grid": {"power_w": 7200.0}}),  # 8 s: (3600 + 7200) / 2 * 8 / 3600 = 12 Wh
        ],
    )
    assert results[0].wh[Quantity.IMPORT] == 12.0
    assert results[0].complete


def test_a_counter_bridges_any_gap_and_the_closing_reading_carries_it() -> None:
    integrator = EnergyIntegrator(EnergySettings(max_gap_s=10.0))
    results = run(
        integrator,
        [
            (0.0, {"grid": {"power_w": 500.0, "import_energy_wh": 100.0}}),
            (3600.0, {"grid": {"power_w": 500.0, "import_energy_wh": 600.0}}),
        ],
    )
    assert results[0].wh[Quantity.IMPORT] == 500.0
    # Export has no counter: its hour is unmeasured, so the reading is incomplete.
    assert results[0].wh[Quantity.EXPORT] == 0.0
    assert not results[0].complete
    assert results[0].span_s == 3600.0
    # With both counters the hour is measured whole.
    both = EnergyIntegrator(EnergySettings(max_gap_s=10.0))
    grid = {"import_energy_wh": 100.0, "export_energy_wh": 7.0}
    later = {"import_energy_wh": 600.0, "export_energy_wh": 9.0}
    results = run(both, [(0.0, {"grid": grid}), (3600.0, {"grid": later})])
    assert results[0].wire() == {
        "span_s": 3600.0,
        "complete": True,
        "import_wh": 500.0,
        "export_wh": 2.0,
        "house_wh": 498.0,
    }


def test_a_quantity_missing_from_a_reading_is_caught_up_by_the_next() -> None:
    # The battery's BMS misses a tick: reading 2 has no battery energy, reading 3 has two seconds.
    integrator = EnergyIntegrator(EnergySettings())
    grid = {"power_w": 0.0, "import_energy_wh": 0.0, "export_energy_wh": 0.0}
    results = run(
        integrator,
        [
            (0.0, {"grid": grid, "battery": {"power_w": 3600.0}}),
            (1.0, {"grid": grid, "battery": {"power_w": 3600.0}}),
            (2.0, {"grid": grid}),
            (3.0, {"grid": grid, "battery": {"power_w": 3600.0}}),
        ],
    )
    assert [r.wh.get(Quantity.DISCHARGE) for r in results] == [1.0, None, 2.0]
    # House waits for the battery: the balance of reading 2 goes with reading 3's.
    assert [r.house_wh for r in results] == [1.0, None, 2.0]


def test_house_is_the_balance() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    site = {
        "solar": {"pv_power_w": 3600.0},  # 1 Wh per second
        "grid": {"power_w": -1800.0},  # exports 0.5
        "battery": {"power_w": -720.0},  # charges 0.2
    }
    results = run(integrator, [(0.0, site), (1.0, site)])
    assert results[0].house_wh == pytest.approx(0.3)


def test_a_coarse_counter_beside_fine_powers_carries_the_negative_balance() -> None:
    # PV counted in 10 Wh steps (EPEver), 1800 W of it exported, 1800 W used in the house:
    # between two steps the balance is negative, the step makes up for it.
    integrator = EnergyIntegrator(EnergySettings())
    samples = []
    for t in range(0, 601):
        pv_counter = 10.0 * (t // 10)  # 3600 W: 1 Wh a second, a 10 Wh step every 10 s
        samples.append(
            (
                float(t),
                {"solar": {"energy_total_wh": pv_counter}, "grid": {"power_w": -1800.0}},
            )
        )
    results = run(integrator, samples)
    assert total(results, Quantity.PV) == 600.0
    assert total(results, Quantity.EXPORT) == pytest.approx(300.0, abs=0.001)
    assert house(results) == pytest.approx(300.0, abs=0.001)
    assert all(r.house_wh is not None and r.house_wh >= 0 for r in results)
    assert integrator.counts[EnergyEvent.HOUSE_CLAMPED] == 0


def test_a_balance_negative_for_15_minutes_is_clamped_and_counted() -> None:
    # Exporting with no PV at all: meters that disagree. Carried 15 minutes, then dropped.
    odd = {"solar": {"pv_power_w": 0.0}, "grid": {"power_w": -360.0}}  # 0.1 Wh a second
    integrator = EnergyIntegrator(EnergySettings())
    results = run(integrator, ((float(t), odd) for t in range(0, 903)))
    assert all(r.house_wh == 0.0 for r in results)
    clamped = [i for i, r in enumerate(results) if EnergyEvent.HOUSE_CLAMPED in r.events]
    # Negative from the reading at 1 s; over 900 s later, at 902 s, its 902 seconds go.
    assert clamped == [901]
    assert integrator.clamped_wh == pytest.approx(90.2, abs=0.001)


def test_no_grid_meter_no_house() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    results = run(
        integrator,
        [(0.0, {"solar": {"pv_power_w": 100.0}})] * 1 + [(1.0, {"solar": {"pv_power_w": 100.0}})],
    )
    assert results[0].house_wh is None
    assert results[0].wire() == {"span_s": 1.0, "complete": True, "pv_wh": 0.028}


def test_a_pv_inverters_ac_output_is_the_pv_yield_of_a_site_without_a_battery() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    meter = {"power_w": -300.0, "import_energy_wh": 50.0}
    results = run(
        integrator,
        [
            (0.0, {"inverter": {"ac_power_w": 1800.0, "energy_total_wh": 10.0}, "grid": meter}),
            (1.0, {"inverter": {"ac_power_w": 1800.0, "energy_total_wh": 10.5}, "grid": meter}),
            (2.0, {"inverter": {"ac_power_w": 1800.0}, "grid": meter}),  # counter not read
        ],
    )
    assert [r.wh[Quantity.PV] for r in results] == [0.5, 0.5]  # counter, then power
    # Export integrated from the grid's power: 300 W is 1/12 Wh a second, sent as 0.083
    # then 0.084 (the rounding carried), so house is 0.5 - 0.083, then 0.5 - 0.084.
    assert [r.house_wh for r in results] == [0.417, 0.416]


def test_a_hybrid_inverters_ac_counter_is_never_pv_yield() -> None:
    # A battery on the site: the inverter's AC side carries its energy too. No PV, no house.
    integrator = EnergyIntegrator(EnergySettings())
    site = {
        "inverter": {"ac_power_w": 500.0, "energy_total_wh": 10.0},
        "grid": {"power_w": 100.0},
        "battery": {"power_w": 400.0},
    }
    later = {**site, "inverter": {"ac_power_w": 500.0, "energy_total_wh": 20.0}}
    results = run(integrator, [(0.0, site), (1.0, later), (2.0, later)])
    assert all(Quantity.PV not in r.wh for r in results)
    assert all(r.house_wh is None for r in results)
    assert integrator.state.house == 0.0  # nothing carried for a house that cannot be known


def test_a_site_with_solar_values_never_falls_back_to_the_inverter() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    results = run(
        integrator,
        [
            (0.0, {"solar": {"pv_power_w": 3600.0}, "inverter": {"ac_power_w": 3400.0}}),
            (1.0, {"solar": {"pv_power_w": 3600.0}, "inverter": {"ac_power_w": 3400.0}}),
            (2.0, {"inverter": {"ac_power_w": 3400.0}}),  # the charge controller missed a tick
            (3.0, {"solar": {"pv_power_w": 3600.0}, "inverter": {"ac_power_w": 3400.0}}),
        ],
    )
    assert [r.wh.get(Quantity.PV) for r in results] == [1.0, 2.0]


def test_the_state_survives_a_restart_as_json() -> None:
    first = EnergyIntegrator(EnergySettings())
    samples = [(float(t), {"grid": {"power_w": 1000.0}}) for t in range(0, 7201)]
    before = run(first, samples[:3000])
    # A new integrator from the saved state: nothing lost, nothing doubled.
    second = EnergyIntegrator(EnergySettings(), IntegratorState.from_json(first.state.to_json()))
    after = run(second, samples[3000:])
    assert total(before + after, Quantity.IMPORT) == pytest.approx(2000.0, abs=0.001)
    with pytest.raises(ValueError, match="not an energy state"):
        IntegratorState.from_json('{"last_t": 1}')


def test_a_state_shifted_onto_a_new_axis_continues() -> None:
    first = EnergyIntegrator(EnergySettings())
    run(first, [(100.0, {"grid": {"power_w": 3600.0}})])
    # A reboot: the new monotonic axis starts at 0; the old instant 100 is now -5.
    second = EnergyIntegrator(EnergySettings(), first.state.shifted(-105.0))
    results = run(second, [(0.0, {"grid": {"power_w": 3600.0}})])
    assert results[0].wh[Quantity.IMPORT] == 5.0
    assert results[0].span_s == 5.0


def test_an_unknown_span_takes_counters_as_they_are_and_integrates_no_power() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    run(
        integrator,
        [(0.0, {"grid": {"power_w": 100.0, "import_energy_wh": 0.0}, "battery": {"power_w": 1.0}})],
    )
    integrator.lose_time()
    results = run(
        integrator,
        [(5.0, {"grid": {"power_w": 100.0, "import_energy_wh": 1e6}, "battery": {"power_w": 1.0}})],
    )
    assert results[0].span_s is None
    assert results[0].wh[Quantity.IMPORT] == 1e6
    assert results[0].wh[Quantity.DISCHARGE] == 0.0
    assert not results[0].complete


def test_rounding_never_drifts() -> None:
    integrator = EnergyIntegrator(EnergySettings())
    power = 1234.5678
    results = run(integrator, ((float(t), {"solar": {"pv_power_w": power}}) for t in range(36_001)))
    exact = power * 36_000 / 3600
    assert math.isclose(total(results, Quantity.PV), exact, abs_tol=0.001)
    assert all(round(r.wh[Quantity.PV], 3) == r.wh[Quantity.PV] for r in results)


def test_what_a_reading_cannot_carry_is_never_sent() -> None:
    # Over a year since the last reading: the span is unknown (the hub takes up to a year).
    integrator = EnergyIntegrator(EnergySettings())
    year = 367 * 86_400.0
    results = run(
        integrator,
        [
            (0.0, {"grid": {"import_energy_wh": 10.0, "export_energy_wh": 0.0}}),
            (year, {"grid": {"import_energy_wh": 5e6, "export_energy_wh": 0.0}}),
        ],
    )
    assert results[0].span_s is None
    assert results[0].wh[Quantity.IMPORT] == 5e6 - 10.0
    # A counter jumping by more than 1e9 Wh is a new device, even with the time unknown.
    integrator.lose_time()
    results = run(
        integrator, [(year + 5, {"grid": {"import_energy_wh": 2e9, "export_energy_wh": 0.0}})]
    )
    assert results[0].wh[Quantity.IMPORT] == 0.0
    assert integrator.counts[EnergyEvent.COUNTER_REJECTED] == 1
