"""The ``growatt`` site: an SPH hybrid with its meter and battery, and a MOD TL3-X beside it.

Pure logic. Unit 1 is a Growatt SPH (``growatt_sph``): the whole site as the
hybrid sees it through its own meter and battery (storage group 1000+). Unit 2 is
a MOD TL3-X string inverter (``growatt_tlx``, input 3000+) on the same RS485
line, showing the PV side and its AC output; it has no battery, so its BDC
registers (3166+) read zero, as on a real TL3-X without one. Both are served
with the read limits and unreadable ranges of drivers/profiles/growatt.py.

What the plant gives that Growatt's registers cannot hold is shown as the device
would: the document has no signed power, so a negative AC output (the battery
charging from the grid) reads 0 W, grid power becomes "power to user" and "power
to grid", battery power "discharge" and "charge" power; plant states become
Growatt's run states.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from drivers.profile import RegisterImage
from drivers.profiles.growatt import SPH, TLX_SERVED
from drivers.registers import RegisterType
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

__all__ = ["LAYOUT", "documented", "inverter_side", "sph_sections", "tlx_sections"]

SPH_UNIT: Final = 1
TLX_UNIT: Final = 2
# Plant states (SunSpec names) that Growatt shows as "normal" operation.
_RUNNING: Final = frozenset({"mppt", "throttled"})
# V1.24 input 1000 uwSysWorkMode: 0 waiting, 3 SysFault, 5 PV+battery online.
_WORK_MODE: Final = {"normal": 5.0, "fault": 3.0}


# V1.24 page 3, "Register range for various types of inverter", input (04) ranges.
SPH_RANGES: Final = ((0, 124), (1000, 1249))
TLX_RANGES: Final = ((3000, 3374),)
TL3X_RANGES: Final = ((0, 249),)


def documented(ranges: tuple[tuple[int, int], ...]) -> Callable[[RegisterImage], None]:
    """A fill answering every input register the document lists for a type (0 if unsimulated)."""

    def fill(image: RegisterImage) -> None:
        table = image.setdefault(RegisterType.INPUT, {})
        for first, last in ranges:
            for address in range(first, last + 1):
                table.setdefault(address, 0)

    return fill


def _number(values: Mapping[str, object], key: str) -> float | None:
    value = values.get(key)
    return float(value) if isinstance(value, int | float) else None


def _split(value: float | None, positive: str, negative: str) -> dict[str, object]:
    """One signed power as Growatt's two unsigned ones."""
    if value is None:
        return {}
    return {positive: max(value, 0.0), negative: max(-value, 0.0)}


def inverter_side(sections: PlantSections, idle_state: str) -> DeviceSections:
    """The plant's inverter and PV as a Growatt shows them (unsigned AC output, run state)."""
    inverter = dict(sections.get("inverter", {}))
    for key in ("ac_power_w", "ac_current_a"):
        value = _number(inverter, key)
        if value is not None:
            inverter[key] = max(value, 0.0)
    state = inverter.get("state")
    if state is not None:
        inverter["state"] = (
            "normal" if state in _RUNNING else "fault" if state == "fault" else idle_state
        )
    return {"inverter": inverter, "solar": dict(sections.get("solar", {}))}


def _meter_and_battery(sections: PlantSections) -> dict[str, object]:
    grid, battery = sections.get("grid", {}), sections.get("battery", {})
    extra = sections.get("extra", {})
    out: dict[str, object] = {
        **_split(_number(grid, "power_w"), "grid_import_power_w", "grid_export_power_w"),
        **_split(
            _number(battery, "power_w"), "battery_discharge_power_w", "battery_charge_power_w"
        ),
    }
    for mine, theirs in (
        ("load_power_w", "house_power_w"),
        ("battery_charged_energy_wh", "bms_charged_energy_wh"),
        ("battery_discharged_energy_wh", "bms_discharged_energy_wh"),
    ):
        if theirs in extra:
            out[mine] = extra[theirs]
    return out


def sph_sections(sections: PlantSections) -> DeviceSections:
    """What the SPH shows: its inverter and PV, its meter, its battery."""
    out = inverter_side(sections, idle_state="waiting")
    grid = sections.get("grid", {})
    out["grid"] = {k: grid[k] for k in ("import_energy_wh", "export_energy_wh") if k in grid}
    battery = sections.get("battery", {})
    out["battery"] = {
        k: battery[k]
        for k in (
            "soc_pct",
            "voltage_v",
            "temperature_c",
            "cell_voltage_min_v",
            "cell_voltage_max_v",
        )
        if k in battery
    }
    extra = _meter_and_battery(sections)
    extra["system_work_mode"] = _WORK_MODE.get(str(out["inverter"].get("state")), 0.0)
    out["extra"] = extra
    return out


def tlx_sections(sections: PlantSections) -> DeviceSections:
    """What a MOD TL3-X without battery or meter shows: its PV and AC output."""
    return inverter_side(sections, idle_state="standby")


LAYOUT: Final = SiteLayout(
    name="growatt",
    description=(
        "a Growatt SPH hybrid (meter and battery behind it) and a MOD TL3-X "
        "string inverter on one RS485 line"
    ),
    devices=(
        SimulatedDevice(
            unit=SPH_UNIT,
            profile="growatt_sph",
            role=Role.INVERTER,
            name="inverter",
            served=SPH,
            measures=sph_sections,
            fill=documented(SPH_RANGES),
            description="SPH hybrid inverter (growatt_sph, input 0-124 and 1000-1124)",
        ),
        SimulatedDevice(
            unit=TLX_UNIT,
            profile="growatt_tlx",
            role=Role.SOLAR,
            name="pv_inverter",
            served=TLX_SERVED,
            measures=tlx_sections,
            fill=documented(TLX_RANGES),
            description="MOD TL3-X string inverter (growatt_tlx, input 3000-3249)",
        ),
    ),
)
