"""The plant as a Deye hybrid: one inverter that reaches the PV, the battery and the grid CT.

Pure logic. ``ems sim --site deye`` serves a single-phase SUN-xK-SG01LP1 and
``ems sim --site deye3`` a three-phase SUN-xK-SG04LP3, each at unit 1 (Deye's
default), with the maps of :mod:`drivers.profiles.deye`. A hybrid sees the
whole site: its PV inputs, its battery (the BMS on its battery port), its
own AC output and the grid through its CT, so each shows nearly every section
of the plant:

- the plant's PV array is on input PV1; PV2 has nothing connected (0 V, 0 A, 0 W);
- the inverter's state is Deye's running state: "normal" while it converts,
  "self_check" while it starts, "fault", else "standby";
- the single-phase total grid import is served as its two words, 78 (low)
  and 80 (high), in units of 0.1 kWh, as the device keeps it;
- the battery counters are the BMS's terminal energies, the load power the house's.

Both answer as the tables do: every register from 0 to the last one the
transcriptions list (611 single-phase, 709 three-phase) reads, the ones not
simulated as 0 (reserved registers read 0 on the device too); a read beyond
is refused (exception 02); reads of up to 125 registers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from drivers.profile import RegisterImage
from drivers.profiles.deye import (
    DEYE_SG01LP1_SERVED,
    DEYE_SG04LP3_SERVED,
    IMPORT_HIGH,
    IMPORT_LOW,
    KWH_TENTHS,
)
from drivers.registers import RegisterType
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

UNIT: Final = 1
# The last register the transcriptions list: single-phase "Bat1 cycle" (611);
# three-phase the V104 upper words of the AC powers (687-709).
LAST_REGISTER_LP1: Final = 611
LAST_REGISTER_LP3: Final = 709

# The plant's inverter states (SunSpec names) as Deye's running state.
_RUNNING: Final = {
    "mppt": "normal",
    "throttled": "normal",
    "starting": "self_check",
    "fault": "fault",
}


def _float(values: object, name: str) -> float | None:
    value = values.get(name) if isinstance(values, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _copy(source: dict[str, object], names: tuple[str, ...]) -> dict[str, object]:
    return {name: source[name] for name in names if name in source}


def hybrid(sections: PlantSections) -> DeviceSections:
    """What a Deye hybrid measures of the plant (both tables' fields, by protocol name)."""
    inverter = dict(sections.get("inverter", {}))
    grid = dict(sections.get("grid", {}))
    solar = dict(sections.get("solar", {}))
    battery = dict(sections.get("battery", {}))
    plant_extra = dict(sections.get("extra", {}))
    out_inverter = _copy(
        inverter,
        ("ac_power_w", "ac_voltage_v", "ac_current_a", "ac_frequency_hz", "temperature_c"),
    )
    out_inverter["state"] = _RUNNING.get(str(inverter.get("state")), "standby")
    extra: dict[str, object] = {"pv2_power_w": 0.0, "pv2_voltage_v": 0.0, "pv2_current_a": 0.0}
    for plant_name, name in (
        ("pv_power_w", "pv1_power_w"),
        ("pv_voltage_v", "pv1_voltage_v"),
        ("pv_current_a", "pv1_current_a"),
    ):
        if (value := _float(solar, plant_name)) is not None:
            extra[name] = value
    for plant_name, name in (
        ("inverter_rated_power_w", "inverter_rated_power_w"),
        ("bms_charged_energy_wh", "battery_charge_total_wh"),
        ("bms_discharged_energy_wh", "battery_discharge_total_wh"),
        ("house_power_w", "load_power_w"),
    ):
        if (value := _float(plant_extra, plant_name)) is not None:
            extra[name] = value
    if (celsius := _float(inverter, "temperature_c")) is not None:
        extra["inverter_dc_temperature_c"] = celsius
    if (watts := _float(grid, "power_w")) is not None:
        extra["grid_ct_power_w"] = watts  # the CT sits at the grid connection
    extra["grid_connected"] = 1.0
    return {
        "inverter": out_inverter,
        "grid": _copy(
            grid,
            (
                "power_w",
                "voltage_v",
                "current_a",
                "frequency_hz",
                "import_energy_wh",
                "export_energy_wh",
                "phase_voltage_v",
                "phase_power_w",
            ),
        ),
        "solar": _copy(solar, ("energy_today_wh", "energy_total_wh")),
        "battery": _copy(
            battery, ("soc_pct", "voltage_v", "current_a", "power_w", "temperature_c")
        ),
        "extra": extra,
    }


def single_phase(sections: PlantSections) -> DeviceSections:
    """The SG01LP1's view: :func:`hybrid`, its total grid import as the words 78 and 80."""
    out = hybrid(sections)
    imported = _float(out["grid"], "import_energy_wh")
    if imported is not None:
        tenths = round(imported / KWH_TENTHS)
        out["extra"][IMPORT_LOW] = float(tenths & 0xFFFF)
        out["extra"][IMPORT_HIGH] = float((tenths >> 16) & 0xFFFF)
    return out


def _table(last: int) -> Callable[[RegisterImage], None]:
    def fill(image: RegisterImage) -> None:
        table = image.setdefault(RegisterType.HOLDING, {})
        for address in range(last + 1):
            table.setdefault(address, 0)

    return fill


LAYOUT: Final = SiteLayout(
    name="deye",
    description=(
        "a Deye SUN-xK-SG01LP1 single-phase hybrid (unit 1) with its battery and grid CT, on RS485"
    ),
    devices=(
        SimulatedDevice(
            unit=UNIT,
            profile="deye_sg01lp1",
            role=Role.INVERTER,
            name="inverter",
            served=DEYE_SG01LP1_SERVED,
            measures=single_phase,
            fill=_table(LAST_REGISTER_LP1),
            description="Deye SUN-5K-SG01LP1 hybrid inverter (deye_sg01lp1)",
        ),
    ),
)

LAYOUT_3P: Final = SiteLayout(
    name="deye3",
    description=(
        "a Deye SUN-xK-SG04LP3 three-phase hybrid (unit 1) with its battery and grid CT, on RS485"
    ),
    devices=(
        SimulatedDevice(
            unit=UNIT,
            profile="deye_sg04lp3",
            role=Role.INVERTER,
            name="inverter",
            served=DEYE_SG04LP3_SERVED,
            measures=hybrid,
            fill=_table(LAST_REGISTER_LP3),
            description="Deye SUN-10K-SG04LP3 hybrid inverter (deye_sg04lp3)",
        ),
    ),
)
