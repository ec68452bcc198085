"""The simulated Sungrow site: one SH hybrid inverter that sees the whole plant.

Pure logic. ``ems sim --site sungrow`` serves the plant through a Sungrow
SH5K-20 (5 kW, single phase, 48 V battery: the plant's own sizes) at unit 1,
as its LAN port does: the battery behind it and the Sungrow smart meter on its
grid connection are read through it (:mod:`drivers.profiles.sungrow`).

What it shows differs from the plant's sections as the device does: the
running state is Sungrow's (Appendix 2), battery power and current are
magnitudes with the direction in the power flow state 13001 (Appendix 3), the
single PV array is on MPPT 1, and every register of the document's blocks that
the plant does not fill reads "unavailable" (0xFFFF), as the document says an
unavailable register answers.
"""

from __future__ import annotations

from typing import Final

from drivers.profile import RegisterImage
from drivers.profiles import sungrow
from drivers.registers import RegisterType
from simulation.layout import (
    DeviceSections,
    PlantSections,
    SimulatedDevice,
    SiteLayout,
    whole_site,
)
from telemetry.roles import Role

# The plant's inverter states (SunSpec's names) as an SH inverter reports them.
_STATES: Final = {
    "off": "stop",
    "sleeping": "standby",
    "starting": "starting",
    "mppt": "running",
    "throttled": "derating",
    "shutting_down": "stop",
    "fault": "fault",
    "standby": "standby",
}
# Table 3 blocks the SH answers (document register numbers 4950-5036, 5242 and
# 13000-13079), as PDU addresses.
_DOCUMENTED_INPUT: Final = (
    range(4949, 5036),
    range(5241, 5242),
    range(12999, 13079),
)
_UNAVAILABLE_U16: Final = 0xFFFF


def _number(values: dict[str, object], name: str) -> float | None:
    value = values.get(name)
    return float(value) if isinstance(value, int | float) else None


def _flow_status(out: DeviceSections) -> int:
    """Register 13001 (Appendix 3) for the plant's flows, at the registers' 1 W resolution."""
    solar, battery = out.get("solar", {}), out.get("battery", {})
    grid, extra = out.get("grid", {}), out.get("extra", {})
    bits = 0
    if round(_number(solar, "pv_power_w") or 0.0) >= 1:
        bits |= sungrow.FLOW_PV
    battery_w = round(_number(battery, "power_w") or 0.0)
    if battery_w < 0:
        bits |= sungrow.FLOW_CHARGING
    elif battery_w > 0:
        bits |= sungrow.FLOW_DISCHARGING
    if round(_number(extra, "house_power_w") or 0.0) >= 1:
        bits |= sungrow.FLOW_LOAD
    grid_w = round(_number(grid, "power_w") or 0.0)
    if grid_w < 0:
        bits |= sungrow.FLOW_FEED_IN
    elif grid_w > 0:
        bits |= sungrow.FLOW_IMPORT
    return bits


def sh_sections(sections: PlantSections) -> DeviceSections:
    """What the SH inverter shows of the plant, in the map's fields."""
    out = whole_site(sections)
    extra = out.setdefault("extra", {})
    extra["power_flow_status"] = float(_flow_status(out))
    inverter = out.setdefault("inverter", {})
    state = inverter.get("state")
    if isinstance(state, str):
        inverter["state"] = _STATES.get(state, "running")
    battery = out.setdefault("battery", {})
    for name in ("power_w", "current_a"):
        value = _number(battery, name)
        if value is not None:
            battery[name] = abs(value)  # the direction is in 13001
    solar = out.setdefault("solar", {})
    extra["pv1_voltage_v"] = solar.get("pv_voltage_v", 0.0)
    extra["pv1_current_a"] = solar.get("pv_current_a", 0.0)
    extra["pv2_voltage_v"] = 0.0
    extra["pv2_current_a"] = 0.0
    if "bms_discharged_energy_wh" in extra:
        extra["battery_discharge_wh"] = extra["bms_discharged_energy_wh"]
    if "bms_charged_energy_wh" in extra:
        extra["battery_charge_wh"] = extra["bms_charged_energy_wh"]
    return out


def _unavailable_elsewhere(image: RegisterImage) -> None:
    """Every documented input register the plant leaves empty reads 0xFFFF."""
    table = image.setdefault(RegisterType.INPUT, {})
    for block in _DOCUMENTED_INPUT:
        for address in block:
            table.setdefault(address, _UNAVAILABLE_U16)


INVERTER_UNIT: Final = 1

LAYOUT: Final = SiteLayout(
    name="sungrow",
    description=(
        "a Sungrow SH5K-20 hybrid inverter at unit 1, its battery and smart meter "
        "read through it (sungrow_sh)"
    ),
    devices=(
        SimulatedDevice(
            unit=INVERTER_UNIT,
            profile="sungrow_sh",
            role=Role.INVERTER,
            name="inverter",
            served=sungrow.SUNGROW_SH_SERVED,
            measures=sh_sections,
            fill=_unavailable_elsewhere,
            description="Sungrow SH5K-20 hybrid inverter (sungrow_sh), battery and meter",
        ),
    ),
)
