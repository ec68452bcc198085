"""A Fronius GEN24 Plus site: the inverter at unit 1 with its battery, the Smart Meter at 200.

Pure logic. The inverter answers the SunSpec chain of a Symo GEN24 Plus set to
"int + SF" (:mod:`drivers.profiles.fronius`): common model (65 registers) at
40002, inverter 103 at 40069, the nameplate and settings models 120-123 (their
headers only: the kit does not read them), MPPT 160 with four modules at 40253
and storage 124 at 40343. Modules 1 and 2 carry the PV strings (the plant's
array split evenly), modules 3 and 4 the battery's charge and discharge power
as the GEN24 reports them; model 124 the state of charge with Fronius's scale
factors (-2) and no battery voltage ("not supported"). The Smart Meter answers
at unit 200 with its own chain: common model, then meter 203.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

from drivers.profile import Point, RegisterMap, Target
from drivers.profiles import sunspec
from drivers.profiles.fronius import MANUFACTURER, METER_UNIT, SOURCE
from drivers.registers import DataType, RegisterType
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

H = RegisterType.HOLDING
COMMON_LENGTH: Final = 65  # Fronius: "65 = Length of block", no pad
# Models the GEN24 serves between 103 and 160 (nameplate, settings, status,
# controls) with their lengths, as the int+SF map lays them out (40121-40252).
OPAQUE: Final = ((120, 26), (121, 30), (122, 44), (123, 24))
# Fronius's storage scale factors (model 124): percentages in hundredths.
STORAGE_SF: Final = {"ChaState_SF": -2, "MinRsvPct_SF": -2, "InOutWRte_SF": -2}

Part = sunspec.ModelDef | tuple[int, int]


def _storage() -> sunspec.ModelDef:
    rows = tuple(
        dataclasses.replace(
            row,
            constant=STORAGE_SF.get(row.name, row.constant),
            # InBatV and StorAval: "not supported" (left "not implemented").
            path=None if row.name in ("InBatV", "StorAval") else row.path,
        )
        for row in sunspec.STORAGE.rows
    )
    return sunspec.ModelDef(124, sunspec.STORAGE.length, rows)


def chain_map(name: str, parts: Sequence[Part]) -> RegisterMap:
    """A served SunSpec chain from 40000: full models, and headers only for (id, length)."""
    points = [Point("SunS", 40000, H, DataType.STRING, length=2, constant="SunS")]
    taken: set[Target] = set()
    address = 40002
    for position, part in enumerate(parts):
        if isinstance(part, sunspec.ModelDef):
            prefix = f"{position}.{part.model_id}."
            points += sunspec.model_points(part, address, prefix, taken)
            length = part.length
        else:
            model_id, length = part
            points += [
                Point(f"{position}.{model_id}.ID", address, H, DataType.UINT16, constant=model_id),
                Point(f"{position}.{model_id}.L", address + 1, H, DataType.UINT16, constant=length),
            ]
        address += 2 + length
    points.append(Point("end.ID", address, H, DataType.UINT16, constant=sunspec.END_ID))
    points.append(Point("end.L", address + 1, H, DataType.UINT16, constant=0))
    return RegisterMap(name=name, source=SOURCE, points=tuple(points), na_markers=True)


INVERTER_MAP: Final = chain_map(
    "fronius_gen24",
    (
        sunspec.common_model(
            COMMON_LENGTH,
            maker=MANUFACTURER,
            model="Symo GEN24 10.0 Plus",
            version="1.34.6-1",
            serial="SIM-GEN24-01",
        ),
        sunspec.MODELS[103],
        *OPAQUE,
        sunspec.mppt(4),
        _storage(),
    ),
)
METER_MAP: Final = chain_map(
    "fronius_smart_meter",
    (
        sunspec.common_model(
            COMMON_LENGTH,
            maker=MANUFACTURER,
            model="Smart Meter TS 65A-3",
            serial="SIM-TS65A-01",
        ),
        sunspec.MODELS[203],
    ),
)


def _float(values: object, name: str) -> float | None:
    value = values.get(name) if isinstance(values, dict) else None
    return float(value) if isinstance(value, int | float) else None


def inverter_sees(sections: PlantSections) -> DeviceSections:
    """The GEN24's AC side, two PV trackers, and the battery as modules 3/4 and model 124."""
    solar, battery = dict(sections.get("solar", {})), dict(sections.get("battery", {}))
    extra = dict(sections.get("extra", {}))
    shown: dict[str, object] = {
        k: extra[k] for k in ("inverter_dc_current_a", "inverter_dc_voltage_v") if k in extra
    }
    pv_w, pv_v, pv_a = (_float(solar, k) for k in ("pv_power_w", "pv_voltage_v", "pv_current_a"))
    for n in (1, 2):  # the array split evenly over the two trackers
        if pv_w is not None:
            shown[f"mppt{n}_power_w"] = pv_w / 2
        if pv_v is not None:
            shown[f"mppt{n}_voltage_v"] = pv_v
        if pv_a is not None:
            shown[f"mppt{n}_current_a"] = pv_a / 2
    watts, volts, amps = (_float(battery, k) for k in ("power_w", "voltage_v", "current_a"))
    for n, sign in ((3, -1.0), (4, 1.0)):  # 3: charge, 4: discharge, both >= 0
        if watts is not None:
            shown[f"mppt{n}_power_w"] = max(sign * watts, 0.0)
        if amps is not None:
            shown[f"mppt{n}_current_a"] = max(sign * amps, 0.0)
        if volts is not None:
            shown[f"mppt{n}_voltage_v"] = volts
    for n, source in ((3, "bms_charged_energy_wh"), (4, "bms_discharged_energy_wh")):
        if source in extra:
            shown[f"mppt{n}_energy_wh"] = extra[source]
    rated = _float(extra, "inverter_rated_power_w")
    if rated is not None:
        shown["storage_max_charge_w"] = rated
    return {
        "inverter": dict(sections.get("inverter", {})),
        "battery": {k: battery[k] for k in ("soc_pct", "state") if k in battery},
        "extra": shown,
    }


def meter_sees(sections: PlantSections) -> DeviceSections:
    """The Smart Meter at the grid connection: the grid section, import-positive."""
    return {"grid": dict(sections.get("grid", {}))}


LAYOUT: Final = SiteLayout(
    name="fronius",
    description=(
        "a Fronius Symo GEN24 Plus (SunSpec int+SF: 103, 160 with 4 modules, 124) with "
        "its battery at unit 1 and the Smart Meter (203) at unit 200"
    ),
    devices=(
        SimulatedDevice(
            unit=1,
            profile="fronius_gen24",
            role=Role.INVERTER,
            name="inverter",
            served=INVERTER_MAP,
            measures=inverter_sees,
            description="Symo GEN24 10.0 Plus with a BYD Battery-Box (fronius_gen24)",
        ),
        SimulatedDevice(
            unit=METER_UNIT,
            profile="fronius_smart_meter",
            role=Role.GRID,
            name="meter",
            served=METER_MAP,
            measures=meter_sees,
            description="Fronius Smart Meter TS 65A-3 (fronius_smart_meter)",
        ),
    ),
)
