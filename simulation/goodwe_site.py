"""The ``goodwe`` site: a GoodWe ET hybrid at unit 247 with its meter and battery behind it.

Pure logic. The inverter shows the whole plant as it sees it through its own
meter (36000+) and its battery's BMS (37000+), encoded with the map the drivers
read (drivers/profiles/goodwe.py), and answers its device information (model
"GW5K-ET", the plant's rated power). Plant states become GoodWe's work and
battery modes; the one PV field is string 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from drivers.profile import RegisterImage
from drivers.profiles.goodwe import ET_SERVED, GOODWE_UNIT
from drivers.registers import RegisterType
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

__all__ = ["DOCUMENTED", "LAYOUT", "et_sections", "fill_documented"]

# Blocks the inverter answers, zeros where the plant gives nothing: device
# information 35000-35032, running data 35100 x 125, meter 36000 x 45, BMS 37000 x 24
# (the reads marcelblijleven/goodwe makes of an ET).
DOCUMENTED: Final = ((35000, 35032), (35100, 35224), (36000, 36044), (37000, 37023))
_RUNNING: Final = frozenset({"mppt", "throttled"})
_BATTERY_STATES: Final = frozenset({"charging", "discharging", "idle"})
_EXTRA: Final = (
    "inverter_rated_power_w",
    "bms_max_charge_current_a",
    "bms_max_discharge_current_a",
)


def fill_documented(image: RegisterImage) -> None:
    table = image.setdefault(RegisterType.HOLDING, {})
    for first, last in DOCUMENTED:
        for address in range(first, last + 1):
            table.setdefault(address, 0)


def _work_mode(state: object) -> str:
    return "on_grid" if state in _RUNNING else "fault" if state == "fault" else "waiting"


def et_sections(sections: PlantSections) -> DeviceSections:
    """What the ET shows of the plant: inverter, PV string 1, meter, battery and BMS."""
    inverter = dict(sections.get("inverter", {}))
    if "state" in inverter:
        inverter["state"] = _work_mode(inverter["state"])
    solar: Mapping[str, object] = sections.get("solar", {})
    battery = dict(sections.get("battery", {}))
    if battery.get("state") not in _BATTERY_STATES:
        battery.pop("state", None)
    plant_extra = sections.get("extra", {})
    extra: dict[str, object] = {k: plant_extra[k] for k in _EXTRA if k in plant_extra}
    for mine, theirs in (
        ("load_power_w", "house_power_w"),
        ("battery_charged_energy_wh", "bms_charged_energy_wh"),
        ("battery_discharged_energy_wh", "bms_discharged_energy_wh"),
    ):
        if theirs in plant_extra:
            extra[mine] = plant_extra[theirs]
    if "pv_power_w" in solar:
        extra["pv1_power_w"] = solar["pv_power_w"]
    return {
        "inverter": inverter,
        "solar": dict(solar),
        "grid": dict(sections.get("grid", {})),
        "battery": battery,
        "extra": extra,
    }


LAYOUT: Final = SiteLayout(
    name="goodwe",
    description="a GoodWe ET hybrid inverter with its meter and battery, at unit 247",
    devices=(
        SimulatedDevice(
            unit=GOODWE_UNIT,
            profile="goodwe_et",
            role=Role.INVERTER,
            name="inverter",
            served=ET_SERVED,
            measures=et_sections,
            fill=fill_documented,
            description="ET hybrid inverter (goodwe_et, holding 35000-37023)",
        ),
    ),
)
