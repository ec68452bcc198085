"""The simulated SolaX site: one X1-Hybrid G4 that sees the whole plant.

Pure logic. ``ems sim --site solax`` serves the plant through a SolaX
X1-Hybrid G4 (single phase, as the plant's inverter) at unit 1, as its COM port
or a Pocket WiFi/LAN module does: the battery behind it and the SolaX meter on
its grid connection are read through it (:mod:`drivers.profiles.solax`).

It shows the plant as the device does: SolaX's run mode (Table 2-2), the
battery's charge-positive power and current (decoded back to the protocol's
sign by the map), the single PV array on MPPT 1, and every documented input
register the plant does not fill reads 0, as the reserved words a SolaX reads
inside a block do. The serial number (holding 0x0000) starts with "H4", as an
X1-Hybrid G4's does.
"""

from __future__ import annotations

from typing import Final

from drivers.profile import RegisterImage, RegisterMap
from drivers.profiles import solax
from drivers.registers import RegisterType
from simulation.layout import (
    DeviceSections,
    PlantSections,
    SimulatedDevice,
    SiteLayout,
    whole_site,
)
from telemetry.roles import Role

# The plant's inverter states (SunSpec's names) as SolaX run modes (Table 2-2).
_RUN_MODES: Final = {
    "off": "waiting",
    "sleeping": "idle",
    "starting": "checking",
    "mppt": "normal",
    "throttled": "normal",
    "shutting_down": "waiting",
    "fault": "fault",
    "standby": "standby",
}
SERIAL: Final = "H4502AEMS00001"  # 14 characters; "H4": X1-Hybrid G4
# V3.21 documents input registers 0x0000-0x0120 and holding 0x0000-0x013E.
_LAST_INPUT: Final = 0x0120

X1_SERVED: Final = RegisterMap(
    name=solax.SOLAX_X1.name,
    source=solax.SOURCE,
    points=(*solax.SOLAX_X1.points, solax.serial_point(SERIAL)),
    max_count=solax.MAX_REGISTERS,
    max_gap=solax.MAX_GAP,
    derive=solax.SOLAX_X1.derive,
)


def _number(values: dict[str, object], name: str) -> float:
    value = values.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def x1_sections(sections: PlantSections) -> DeviceSections:
    """What the X1-Hybrid shows of the plant, in the map's fields."""
    out = whole_site(sections)
    inverter = out.setdefault("inverter", {})
    state = inverter.get("state")
    if isinstance(state, str):
        inverter["state"] = _RUN_MODES.get(state, "normal")
    solar = out.setdefault("solar", {})
    extra = out.setdefault("extra", {})
    extra["pv1_voltage_v"] = _number(solar, "pv_voltage_v")
    extra["pv1_current_a"] = _number(solar, "pv_current_a")
    extra["pv1_power_w"] = _number(solar, "pv_power_w")
    extra["pv2_voltage_v"] = 0.0
    extra["pv2_current_a"] = 0.0
    extra["pv2_power_w"] = 0.0
    if "bms_discharged_energy_wh" in extra:
        extra["battery_discharge_wh"] = extra["bms_discharged_energy_wh"]
    if "bms_charged_energy_wh" in extra:
        extra["battery_charge_wh"] = extra["bms_charged_energy_wh"]
    return out


def _documented_zeros(image: RegisterImage) -> None:
    """Every documented input register the plant leaves empty reads 0 (reserved words)."""
    table = image.setdefault(RegisterType.INPUT, {})
    for address in range(_LAST_INPUT + 1):
        table.setdefault(address, 0)


INVERTER_UNIT: Final = 1

LAYOUT: Final = SiteLayout(
    name="solax",
    description=(
        "a SolaX X1-Hybrid G4 at unit 1, its battery and meter read through it (solax_x1_hybrid)"
    ),
    devices=(
        SimulatedDevice(
            unit=INVERTER_UNIT,
            profile="solax_x1_hybrid",
            role=Role.INVERTER,
            name="inverter",
            served=X1_SERVED,
            measures=x1_sections,
            fill=_documented_zeros,
            description="SolaX X1-Hybrid G4 (solax_x1_hybrid), battery and meter",
        ),
    ),
)
