"""A SolarEdge StorEdge site: one inverter at unit 1 that shows its meter and its battery.

Pure logic. The plant's battery inverter, charge controller and pack stand for a
SolarEdge hybrid (PV and battery on the inverter's DC side), its grid meter for
the SolarEdge meter on the grid connection ("Export+Import", meter 1). The one
device answers with the fixed SolarEdge layout of :mod:`drivers.profiles.solaredge`:
SunSpec at 40000, meter 1 at 40121, battery 1 at 0xE100, and refuses meters 2
and 3 as a site with one meter does. Like the real inverter it takes one Modbus
TCP client at a time (``single_client``).

Battery 1's nameplate and counters come from the plant's pack: rated and
maximum energy are the rated and full capacity at the pack's nominal voltage,
available energy the remaining charge at it; the limits are the BMS's current
limits at the pack's voltage.
"""

from __future__ import annotations

from typing import Final

from drivers.profiles.solaredge import SOLAREDGE
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

# The plant's pack: 16 LiFePO4 cells of 3.2 V nominal (simulation.plant.battery).
PACK_NOMINAL_V: Final = 51.2


def _number(values: object, name: str) -> float | None:
    value = values.get(name) if isinstance(values, dict) else None
    return float(value) if isinstance(value, int | float) else None


def inverter_sees(sections: PlantSections) -> DeviceSections:
    """What the StorEdge inverter shows: its AC and DC sides, meter 1 and battery 1."""
    extra = dict(sections.get("extra", {}))
    battery = dict(sections.get("battery", {}))
    shown: dict[str, object] = {
        k: extra[k] for k in ("inverter_dc_current_a", "inverter_dc_voltage_v") if k in extra
    }
    for name, source in (
        ("battery_rated_wh", "bms_rated_capacity_ah"),
        ("battery_max_energy_wh", "bms_full_capacity_ah"),
        ("battery_available_energy_wh", "bms_remaining_capacity_ah"),
    ):
        ah = _number(extra, source)
        if ah is not None:
            shown[name] = ah * PACK_NOMINAL_V
    volts = _number(battery, "voltage_v")
    for name, source in (
        ("battery_max_charge_w", "bms_max_charge_current_a"),
        ("battery_max_discharge_w", "bms_max_discharge_current_a"),
    ):
        amps = _number(extra, source)
        if amps is not None and volts is not None:
            shown[name] = amps * volts
    for name, source in (
        ("battery_charge_energy_wh", "bms_charged_energy_wh"),
        ("battery_discharge_energy_wh", "bms_discharged_energy_wh"),
    ):
        if source in extra:
            shown[name] = extra[source]
    cells = [
        float(v)
        for k, v in extra.items()
        if k.startswith("bms_cell_temperature_") and isinstance(v, int | float)
    ]
    if cells:
        shown["battery_temperature_max_c"] = max(cells)
    fields = ("soc_pct", "soh_pct", "power_w", "voltage_v", "current_a", "temperature_c", "state")
    pack: dict[str, object] = {k: battery[k] for k in fields if k in battery}
    return {
        "inverter": dict(sections.get("inverter", {})),
        "grid": dict(sections.get("grid", {})),
        "battery": pack,
        "extra": shown,
    }


LAYOUT: Final = SiteLayout(
    name="solaredge",
    description=(
        "a SolarEdge StorEdge inverter (SunSpec 103 at 40000, meter 1 at 40121, "
        "battery 1 at 0xE100) at unit 1, one Modbus TCP client at a time"
    ),
    devices=(
        SimulatedDevice(
            unit=1,
            profile="solaredge",
            role=Role.INVERTER,
            name="inverter",
            served=SOLAREDGE,
            measures=inverter_sees,
            description="SolarEdge SE10K-RWS with its meter and battery (solaredge)",
        ),
    ),
    single_client=True,
)
