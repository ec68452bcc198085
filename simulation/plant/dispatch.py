"""Self-consumption power flow of the DC-coupled site, on plain numbers.

Topology: PV array -> MPPT charge controller -> DC bus (the battery's terminals)
-> battery inverter (on L1) -> house, with the grid as the slack. The policy is
the usual self-consumption one:

1. the inverter covers the house load from the DC bus, up to its rating and to
   what the charger and the battery can supply together;
2. charger output beyond that charges the battery, up to what it accepts;
3. what the battery cannot take is exported through the inverter (up to its rating);
4. what still remains is curtailed: the charger moves the array off its MPP;
5. the grid supplies or takes the difference to the house load.

The flow balances by construction (to float precision):

    pv_w = charger_loss_w + charger_out_w
    charger_out_w + battery_w = inverter_dc_w           (battery_w > 0 discharging)
    inverter_dc_w = inverter_ac_w + inverter_loss_w
    inverter_ac_w + grid_w = load_w                     (grid_w > 0 importing)
"""

from __future__ import annotations

from dataclasses import dataclass

from simulation.plant.converters import LossModel


@dataclass(frozen=True, slots=True)
class PowerFlow:
    pv_available_w: float
    pv_w: float
    charger_out_w: float
    charger_loss_w: float
    battery_w: float
    inverter_dc_w: float
    inverter_ac_w: float
    inverter_loss_w: float
    grid_w: float
    load_w: float
    # The inverter ran at its rating (SunSpec "throttled").
    inverter_limited: bool

    @property
    def curtailed_w(self) -> float:
        return self.pv_available_w - self.pv_w


def dispatch(
    *,
    pv_available_w: float,
    load_w: float,
    charger: LossModel,
    charger_max_out_w: float,
    inverter: LossModel,
    inverter_rated_w: float,
    battery_charge_limit_w: float,
    battery_discharge_limit_w: float,
) -> PowerFlow:
    """Split the powers of one instant between the site's parts (see the module docstring)."""
    if load_w < 0.0 or pv_available_w < 0.0:
        raise ValueError(f"load and PV must be >= 0, got {load_w=} {pv_available_w=}")
    charge_limit = max(0.0, battery_charge_limit_w)
    discharge_limit = max(0.0, battery_discharge_limit_w)
    charger_max = min(charger.output_for(pv_available_w), max(0.0, charger_max_out_w))

    # 1. Cover the house from DC, within the rating and the DC the bus can give.
    budget_ac = inverter.output_for(charger_max + discharge_limit)
    ac = min(load_w, inverter_rated_w, budget_ac)
    dc = inverter.input_for(ac)
    surplus = charger_max - dc
    charger_out = charger_max
    if surplus > 0.0:
        # 2. Charge the battery with the surplus.
        charge = min(surplus, charge_limit)
        rest = surplus - charge
        if rest > 0.0:
            # 3. Export the rest through the inverter, within its rating.
            ac = min(inverter_rated_w, inverter.output_for(dc + rest))
            dc = inverter.input_for(ac)
        # 4. Curtail whatever neither the battery nor the inverter takes.
        charger_out = min(charger_max, dc + charge)
    battery = dc - charger_out
    pv = charger.input_for(charger_out)
    return PowerFlow(
        pv_available_w=pv_available_w,
        pv_w=pv,
        charger_out_w=charger_out,
        charger_loss_w=pv - charger_out,
        battery_w=battery,
        inverter_dc_w=dc,
        inverter_ac_w=ac,
        inverter_loss_w=dc - ac,
        grid_w=load_w - ac,
        load_w=load_w,
        inverter_limited=ac >= inverter_rated_w,
    )
