"""The ``huawei`` site: a SUN2000-5KTL-L1 hybrid with its power meter and LUNA2000.

Pure logic. Unit 1 is the inverter (``huawei_sun2000_l1_luna``): the whole site
as the hybrid sees it, its DTSU666-H meter and its LUNA2000 battery answered
from its own unit id, with the model name, model ID and rating a scan reads
(drivers/profiles/huawei.py, ``SERVED_L1_LUNA``). A read touching only
registers the tables leave out is refused (exception 02), as are the map's
holes; so is any read longer than 64 registers.

Its TCP endpoint behaves as the inverter's: one client at a time, a new
connection closing the one before it, and no answer for the first second after
a connect (the profile waits 1.5 s).

What the plant gives is shown as the inverter would: its input power is its PV
strings' (two strings sharing the array's current), plant states become Huawei's
device status and storage running status, and the day's battery counters, which
the plant does not keep, read 0.
"""

from __future__ import annotations

from typing import Final

from drivers.profiles.huawei import SERVED_L1_LUNA
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

__all__ = ["INVERTER_UNIT", "LAYOUT", "SIM_SETTLE_S", "inverter_sections"]

INVERTER_UNIT: Final = 1
# The silence after a connect the simulated inverter keeps (the first delay found
# needed, 1 s); the profile waits longer.
SIM_SETTLE_S: Final = 1.0

# Plant inverter states (SunSpec names) -> 32089 "Device status" names.
_INVERTER_STATE: Final = {
    "off": "shutdown_command",
    "sleeping": "standby_no_irradiation",
    "starting": "starting",
    "mppt": "on_grid",
    "throttled": "on_grid_power_limited",
    "shutting_down": "shutdown_command",
    "fault": "shutdown_fault",
    "standby": "standby_no_irradiation",
}
# Plant battery states -> 37762 "Running status" names.
_BATTERY_STATE: Final = {"charging": "running", "discharging": "running", "idle": "standby"}


def _number(values: object, key: str) -> float | None:
    value = values.get(key) if isinstance(values, dict) else None
    return float(value) if isinstance(value, int | float) else None


def inverter_sections(sections: PlantSections) -> DeviceSections:
    """What the SUN2000 shows of the plant: inverter and PV, meter, LUNA2000."""
    out: DeviceSections = {name: dict(values) for name, values in sections.items()}
    inverter, solar, battery = out["inverter"], out["solar"], out["battery"]
    extra = out["extra"]
    pv_power = _number(solar, "pv_power_w")
    if pv_power is not None:
        inverter["dc_power_w"] = pv_power
    state = inverter.get("state")
    if isinstance(state, str):
        inverter["state"] = _INVERTER_STATE.get(state, "standby_initializing")
    state = battery.get("state")
    if isinstance(state, str):
        battery["state"] = _BATTERY_STATE.get(state, "standby")
    volts, amps = _number(solar, "pv_voltage_v"), _number(solar, "pv_current_a")
    if volts is not None and amps is not None:
        for string in (1, 2):
            extra[f"pv{string}_voltage_v"] = volts
            extra[f"pv{string}_current_a"] = amps / 2.0
    for mine, theirs in (
        ("battery_charged_energy_wh", "bms_charged_energy_wh"),
        ("battery_discharged_energy_wh", "bms_discharged_energy_wh"),
    ):
        if theirs in extra:
            extra[mine] = extra[theirs]
    return out


LAYOUT: Final = SiteLayout(
    name="huawei",
    description=(
        "a Huawei SUN2000-5KTL-L1 hybrid with its DTSU666-H meter and LUNA2000 battery, "
        "all at unit 1; one TCP client at a time, silent for 1 s after a connect"
    ),
    devices=(
        SimulatedDevice(
            unit=INVERTER_UNIT,
            profile="huawei_sun2000_l1_luna",
            role=Role.INVERTER,
            name="inverter",
            served=SERVED_L1_LUNA,
            measures=inverter_sections,
            undefined=0,
            description="SUN2000-5KTL-L1 + DTSU666-H + LUNA2000",
        ),
    ),
    single_client=True,
    new_client_wins=True,
    settle_s=SIM_SETTLE_S,
)
