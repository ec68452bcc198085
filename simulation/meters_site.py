"""The "meters" site: three energy meters of different makers on one RS485 bus.

Pure logic. The plant is the default site's (sun, house, battery inverter,
grid); what changes is who measures it:

| unit | device | measures |
| --- | --- | --- |
| 1 | Chint DTSU666 (``chint_dtsu666``) | the grid connection |
| 2 | Carlo Gavazzi EM24-DIN (``carlo_gavazzi_em24``) | the house's load |
| 3 | Eastron SDM72D-M-2 (``eastron_sdm72``) | the battery inverter's AC feed |

The EM24 and the SDM72 are shipped as TOML maps only (drivers/profiles/maps):
the simulator serves them from the same maps the agent reads them with.

A sub-meter counts power > 0 when energy flows through it towards the load it
measures (the protocol's import). The house is a resistive load on three
phases (the plant's house power split evenly, unity power factor) and its
import counter is the plant's energy balance (grid import - export + inverter
output): the house's energy plus any energy the inverter draws to charge. The
inverter is single-phase on L1 at unity power factor (the plant's
converter), so its meter sees L1 only; its output is the meter's export
(power < 0) and the inverter's lifetime energy its export counter. The plant
keeps no count of energy into the inverter: that counter stays at 0.

The three are devices of the grid role; the two sub-meters say ``total = false``
in the printed config lines (docs/configuration.md, "Several devices per role"):
their values travel as their own, never added into the site's grid section.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Final

from drivers.profile import RegisterImage, RegisterMap
from drivers.profiles import eastron, get_profile
from drivers.profiles.chint import (
    ADDR_ADDRESS,
    BAUD_9600,
    BAUD_ADDRESS,
    DTSU666,
    IRAT_ADDRESS,
    NET_ADDRESS,
    PROTOCOL_ADDRESS,
    PROTOCOL_N81,
    REV_ADDRESS,
    URAT_ADDRESS,
)
from drivers.registers import DataType, RegisterType, WordOrder, decode_value, encode_value
from simulation.layout import PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

__all__ = ["LAYOUT", "Unit"]


class Unit(enum.IntEnum):
    GRID_METER = 1
    HOUSE_METER = 2
    INVERTER_METER = 3


def _map(profile: str) -> RegisterMap:
    reg_map = get_profile(profile).register_map
    assert reg_map is not None
    return reg_map


EM24: Final = _map("carlo_gavazzi_em24")
SDM72: Final = _map("eastron_sdm72")


def _number(values: Mapping[str, object], name: str, default: float = 0.0) -> float:
    value = values.get(name)
    return float(value) if isinstance(value, int | float) else default


def grid_meter(sections: PlantSections) -> dict[str, dict[str, object]]:
    """The DTSU666 at the connection point shows the plant's grid as it is."""
    return {"grid": dict(sections.get("grid", {})), "extra": dict(sections.get("extra", {}))}


def _phase_volts(grid: Mapping[str, object]) -> list[float]:
    volts = grid.get("phase_voltage_v")
    if isinstance(volts, list | tuple) and len(volts) == 3:
        return [float(v) for v in volts]
    return [_number(grid, "voltage_v", 230.0)] * 3


def house_meter(sections: PlantSections) -> dict[str, dict[str, object]]:
    """The EM24 on the house's feeder: a resistive three-phase load."""
    grid = sections.get("grid", {})
    inverter = sections.get("inverter", {})
    volts = _phase_volts(grid)
    power = max(_number(sections.get("extra", {}), "house_power_w"), 0.0)
    share = power / 3.0
    balance = (
        _number(grid, "import_energy_wh")
        - _number(grid, "export_energy_wh")
        + _number(inverter, "energy_total_wh")
    )
    extra: dict[str, object] = {
        f"grid_phase_current_l{n}_a": share / v if v > 0 else 0.0
        for n, v in enumerate(volts, start=1)
    }
    extra["grid_reactive_power_var"] = 0.0
    return {
        "grid": {
            "power_w": power,
            "phase_power_w": [share] * 3,
            "phase_voltage_v": volts,
            "voltage_v": sum(volts) / 3.0,
            "power_factor": 1.0,
            "frequency_hz": _number(grid, "frequency_hz", 50.0),
            "import_energy_wh": max(balance, 0.0),
            "export_energy_wh": 0.0,
        },
        "extra": extra,
    }


def inverter_meter(sections: PlantSections) -> dict[str, dict[str, object]]:
    """The SDM72 on the single-phase inverter's feed (L1): its output is export."""
    grid = sections.get("grid", {})
    inverter = sections.get("inverter", {})
    output = _number(inverter, "ac_power_w")
    volts = _phase_volts(grid)
    volts[0] = _number(inverter, "ac_voltage_v", volts[0])
    return {
        "grid": {
            "power_w": -output,
            "phase_power_w": [-output, 0.0, 0.0],
            "phase_voltage_v": volts,
            "power_factor": 1.0,
            "frequency_hz": _number(inverter, "ac_frequency_hz", _number(grid, "frequency_hz")),
            "import_energy_wh": 0.0,
            "export_energy_wh": _number(inverter, "energy_total_wh"),
        },
        "extra": {
            "grid_phase_current_l1_a": abs(_number(inverter, "ac_current_a")),
            "grid_phase_current_l2_a": 0.0,
            "grid_phase_current_l3_a": 0.0,
        },
    }


# The DTSU666's keyboard parameters at factory values (CHINT manual, first block).
_DTSU666_SOFTWARE_VERSION: Final = 204


def _dtsu666_settings(image: RegisterImage) -> None:
    holding = image.setdefault(RegisterType.HOLDING, {})
    holding[REV_ADDRESS] = _DTSU666_SOFTWARE_VERSION
    holding[NET_ADDRESS] = 0  # three phase four wire
    holding[IRAT_ADDRESS] = 1
    holding[URAT_ADDRESS] = 10  # ratio 1.0
    holding[PROTOCOL_ADDRESS] = PROTOCOL_N81
    holding[BAUD_ADDRESS] = BAUD_9600
    holding[ADDR_ADDRESS] = int(Unit.GRID_METER)


# SDM72D-M: 30053 total system power; 31281/31283 its import and export shares.
_SDM72_TOTAL_POWER: Final = 0x0034
_SDM72_IMPORT_POWER: Final = 0x0500
_SDM72_EXPORT_POWER: Final = 0x0502


def _sdm72_power_shares(image: RegisterImage) -> None:
    table = image.setdefault(RegisterType.INPUT, {})
    words = (table.get(_SDM72_TOTAL_POWER, 0), table.get(_SDM72_TOTAL_POWER + 1, 0))
    total = decode_value(DataType.FLOAT32, words, WordOrder.ABCD)
    assert isinstance(total, float)
    total = total if math.isfinite(total) else 0.0
    for address, share in (
        (_SDM72_IMPORT_POWER, max(total, 0.0)),
        (_SDM72_EXPORT_POWER, max(-total, 0.0)),
    ):
        high, low = encode_value(DataType.FLOAT32, share, WordOrder.ABCD)
        table[address], table[address + 1] = high, low


LAYOUT: Final = SiteLayout(
    name="meters",
    description=(
        "three meters on one RS485 bus: Chint DTSU666 at the grid connection, "
        "Carlo Gavazzi EM24-DIN on the house, Eastron SDM72D-M-2 on the inverter's feed"
    ),
    devices=(
        SimulatedDevice(
            unit=int(Unit.GRID_METER),
            profile="chint_dtsu666",
            role=Role.GRID,
            name="grid_meter",
            served=DTSU666,
            measures=grid_meter,
            fill=_dtsu666_settings,
            description="grid meter (chint_dtsu666)",
        ),
        SimulatedDevice(
            unit=int(Unit.HOUSE_METER),
            profile="carlo_gavazzi_em24",
            role=Role.GRID,
            name="house_meter",
            served=EM24,
            measures=house_meter,
            total=False,
            description="house load sub-meter (carlo_gavazzi_em24)",
        ),
        SimulatedDevice(
            unit=int(Unit.INVERTER_METER),
            profile="eastron_sdm72",
            role=Role.GRID,
            name="inverter_meter",
            served=eastron.served(SDM72, 72_000_003),
            measures=inverter_meter,
            total=False,
            fill=_sdm72_power_shares,
            description="battery inverter sub-meter (eastron_sdm72)",
        ),
    ),
)
