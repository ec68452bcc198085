"""The pack and its BMS: SOC from integrated current, limits, cells, cycles, temperature."""

from __future__ import annotations

import pytest

from simulation.plant.battery import (
    OCV_CURVE,
    BatteryMemory,
    BatteryPack,
    BatterySpec,
    BatteryStatus,
    cell_ocv,
)

SPEC = BatterySpec()
ROOM_C = 20.0


def _pack(seed: int = 3) -> BatteryPack:
    return BatteryPack(SPEC, seed)


def _hold(
    pack: BatteryPack, memory: BatteryMemory, power_w: float, dt_s: float, steps: int
) -> tuple[BatteryMemory, float, float]:
    """Hold a power for ``steps`` steps: (memory, ampere-hours moved, terminal watt-hours)."""
    ah = wh = 0.0
    for _ in range(steps):
        memory, state = pack.step(memory, power_w, dt_s, ROOM_C)
        ah += state.current_a * dt_s / 3600.0
        wh += state.power_w * dt_s / 3600.0
    return memory, ah, wh


def test_ocv_curve_rises_monotonically_and_clips_outside_0_to_1() -> None:
    socs = [i / 200 for i in range(201)]
    volts = [cell_ocv(soc) for soc in socs]
    assert volts == sorted(volts)
    assert cell_ocv(-0.5) == OCV_CURVE[0][1]
    assert cell_ocv(1.5) == OCV_CURVE[-1][1]


def test_charging_a_known_energy_raises_soc_by_it_less_the_coulombic_loss() -> None:
    pack = _pack()
    start = pack.initial_memory(40.0, ROOM_C)
    energy_wh = 3000.0
    end, ah, wh = _hold(pack, start, -energy_wh, 60.0, 60)  # 3 kW for one hour
    assert wh == pytest.approx(-energy_wh)
    capacity_ah = SPEC.rated_capacity_ah * start.soh
    # SOC follows the integrated current exactly, with the coulombic efficiency...
    assert end.soc - start.soc == pytest.approx(-ah * SPEC.coulombic_efficiency / capacity_ah)
    # ...and the energy over the pack's mean terminal voltage (flat LFP region) closely.
    mean_voltage = pack.open_circuit_voltage((start.soc + end.soc) / 2) + 0.0
    expected = energy_wh / mean_voltage * SPEC.coulombic_efficiency / capacity_ah
    assert end.soc - start.soc == pytest.approx(expected, rel=0.01)


def test_discharging_lowers_soc_by_the_charge_taken_without_coulombic_loss() -> None:
    pack = _pack()
    start = pack.initial_memory(80.0, ROOM_C)
    end, ah, _ = _hold(pack, start, 2000.0, 30.0, 240)
    assert ah > 0
    # Capacity shrinks with SOH while discharging (~1e-5 here): hence the tolerance.
    expected = ah / (SPEC.rated_capacity_ah * start.soh)
    assert start.soc - end.soc == pytest.approx(expected, rel=1e-4)
    assert start.soc - end.soc != pytest.approx(expected * 0.99, rel=1e-4)
    assert end.discharged_ah == pytest.approx(ah)


def test_terminal_voltage_is_the_sum_of_cells_and_power_is_v_times_i() -> None:
    pack = _pack()
    memory = pack.initial_memory(55.0, ROOM_C)
    for power in (-4000.0, -100.0, 0.0, 350.0, 5000.0):
        _, state = pack.step(memory, power, 1.0, ROOM_C)
        assert state.voltage_v == pytest.approx(sum(state.cell_voltages_v))
        assert state.voltage_v * state.current_a == pytest.approx(power, abs=1e-9)
        assert (state.current_a > 0) == (power > 0)
    # Charging raises the terminal voltage above the open-circuit voltage, discharging lowers it.
    _, charging = pack.step(memory, -4000.0, 1.0, ROOM_C)
    _, discharging = pack.step(memory, 4000.0, 1.0, ROOM_C)
    ocv = pack.open_circuit_voltage(memory.soc)
    assert discharging.voltage_v < ocv < charging.voltage_v
    assert charging.status is BatteryStatus.CHARGING
    assert discharging.status is BatteryStatus.DISCHARGING


def test_no_charging_when_full_and_no_discharging_at_the_reserve() -> None:
    pack = _pack()
    full = pack.initial_memory(SPEC.soc_max_pct, ROOM_C)
    empty = pack.initial_memory(SPEC.soc_min_pct, ROOM_C)
    assert pack.limits(full, 1.0).charge_w == 0.0
    assert pack.limits(full, 1.0).discharge_w > 0.0
    assert pack.limits(empty, 1.0).discharge_w == 0.0
    assert pack.limits(empty, 1.0).charge_w > 0.0


def test_charge_current_tapers_to_the_tail_current_near_full() -> None:
    pack = _pack()
    mid = pack.bms_current_limits(pack.initial_memory(50.0, ROOM_C))
    near_full = pack.bms_current_limits(pack.initial_memory(99.9, ROOM_C))
    assert mid[0] == SPEC.max_charge_current_a
    assert near_full[0] == pytest.approx(SPEC.max_charge_current_a * SPEC.tail_current_fraction)


@pytest.mark.parametrize("dt_s", [1.0, 600.0, 3600.0, 86_400.0])
def test_a_step_at_the_limit_never_overshoots_full_or_the_reserve(dt_s: float) -> None:
    pack = _pack()
    memory = pack.initial_memory(97.0, ROOM_C)
    for _ in range(50):
        limit = pack.limits(memory, dt_s).charge_w
        memory, _ = pack.step(memory, -limit, dt_s, ROOM_C)
        assert memory.soc <= SPEC.soc_max_pct / 100.0
    memory = pack.initial_memory(13.0, ROOM_C)
    for _ in range(50):
        limit = pack.limits(memory, dt_s).discharge_w
        memory, _ = pack.step(memory, limit, dt_s, ROOM_C)
        assert memory.soc >= SPEC.soc_min_pct / 100.0 - 1e-12


def test_cell_spread_is_wider_at_the_ends_of_the_curve_than_in_the_flat_middle() -> None:
    pack = _pack()

    def spread(soc_pct: float) -> float:
        _, state = pack.step(pack.initial_memory(soc_pct, ROOM_C), 0.0, 1.0, ROOM_C)
        return state.cell_voltage_max_v - state.cell_voltage_min_v

    assert spread(99.0) > 2 * spread(50.0)
    assert spread(12.0) > 2 * spread(50.0)
    assert spread(50.0) > 0.0


def test_cells_depend_on_the_seed_only() -> None:
    memory = _pack().initial_memory(50.0, ROOM_C)
    a = BatteryPack(SPEC, 1).step(memory, 100.0, 1.0, ROOM_C)[1]
    b = BatteryPack(SPEC, 1).step(memory, 100.0, 1.0, ROOM_C)[1]
    c = BatteryPack(SPEC, 2).step(memory, 100.0, 1.0, ROOM_C)[1]
    assert a.cell_voltages_v == b.cell_voltages_v
    assert a.cell_voltages_v != c.cell_voltages_v


def test_one_rated_capacity_discharged_counts_one_cycle_and_fades_soh() -> None:
    pack = _pack()
    memory = pack.initial_memory(90.0, ROOM_C)
    cycles = 0.0
    for _ in range(10):
        # Discharge a fraction, then recharge it: throughput, not depth, counts.
        memory, ah, _ = _hold(pack, memory, 3000.0, 60.0, 60)
        cycles += ah / SPEC.rated_capacity_ah
        memory, _, _ = _hold(pack, memory, -3000.0, 60.0, 60)
    assert memory.cycle_count == pytest.approx(cycles)
    assert cycles > 1.0
    expected_soh = SPEC.initial_soh_pct / 100 - SPEC.soh_fade_pct_per_cycle / 100 * cycles
    assert memory.soh == pytest.approx(expected_soh)


def test_temperature_rises_with_current_towards_equilibrium_and_stays_stable() -> None:
    pack = _pack()
    memory = pack.initial_memory(50.0, ROOM_C)
    warm, _, _ = _hold(pack, memory, 6000.0, 600.0, 6)
    assert warm.temperature_c > ROOM_C
    # One enormous step lands on the equilibrium instead of overshooting it.
    current = pack.current_for_power(memory.soc, 6000.0)
    equilibrium = ROOM_C + current**2 * pack.resistance_ohm * SPEC.thermal_resistance_k_per_w
    settled, _ = pack.step(memory, 6000.0, 1e7, ROOM_C)
    assert settled.temperature_c == pytest.approx(equilibrium)
    assert warm.temperature_c < equilibrium


def test_no_charging_below_freezing() -> None:
    pack = _pack()
    cold = pack.initial_memory(50.0, -5.0)
    assert pack.limits(cold, 1.0).charge_w == 0.0
    assert pack.limits(cold, 1.0).discharge_w > 0.0


def test_an_impossible_initial_soc_is_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        _pack().initial_memory(120.0, ROOM_C)
