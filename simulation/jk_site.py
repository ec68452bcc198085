"""The plant's battery as a JK-PB BMS on its RS485 monitoring port.

Pure logic. ``ems sim --site jkbms`` serves one JK-PB2A16S20P at DIP address 1
(unit 1), with :data:`drivers.profiles.jkbms.JK_PB_SERVED`: the plant's
16-cell pack as the BMS measures it. Values the BMS computes from its own
measurements are computed here from the plant's: the average cell and the
largest difference, the pack power's size (V x I), SOC and SOH in whole
percent (UINT8 registers); its MOSFET temperature is the pack's. No alarm is
raised and the balancer is idle.

It answers as V1.1 describes: byte addresses ("0x1200 + offset"), a read
of N registers giving N words from that byte on (the server's
``byte_tables``); the three tables from 0x1000 to the last device-information
value (0x1400 + 0x24) read, unsimulated values as 0; beyond, exception 02.
"""

from __future__ import annotations

import statistics
from typing import Final

from drivers.profile import RegisterImage
from drivers.profiles.jkbms import CELLS, INFO, JK_PB_SERVED, POWER_SIZE, register
from drivers.registers import RegisterType
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

UNIT: Final = 1
# V1.1's last device-information value: 0x1400 + 0x24 "PWROnTimes" (UINT32).
LAST_REGISTER: Final = register(INFO, 0x24) + 1


def _float(values: object, name: str) -> float | None:
    value = values.get(name) if isinstance(values, dict) else None
    return float(value) if isinstance(value, int | float) else None


def bms(sections: PlantSections) -> DeviceSections:
    """What the JK-PB measures of the plant's pack."""
    battery = dict(sections.get("battery", {}))
    plant_extra = dict(sections.get("extra", {}))
    out_battery: dict[str, object] = {}
    for name in ("voltage_v", "current_a"):
        if (value := _float(battery, name)) is not None:
            out_battery[name] = value
    for name in ("soc_pct", "soh_pct"):
        if (value := _float(battery, name)) is not None:
            out_battery[name] = float(round(value))  # UINT8 percent
    extra: dict[str, object] = {}
    cells = [
        v for n in range(1, CELLS + 1) if (v := _float(plant_extra, f"bms_cell_voltage_{n:02d}_v"))
    ]
    for n, cell in enumerate(cells, start=1):
        extra[f"bms_cell_voltage_{n:02d}_v"] = cell
    if cells:
        extra["bms_cell_voltage_avg_v"] = statistics.fmean(cells)
        extra["bms_cell_voltage_delta_v"] = max(cells) - min(cells)
    for n in range(1, 5):
        name = f"bms_cell_temperature_{n}_c"
        if (celsius := _float(plant_extra, name)) is not None:
            extra[name] = celsius
    if (board := _float(battery, "temperature_c")) is not None:
        extra["bms_mosfet_temperature_c"] = board
    volts, amps = _float(battery, "voltage_v"), _float(battery, "current_a")
    if volts is not None and amps is not None:
        extra[POWER_SIZE] = abs(volts * amps)
    for name in ("bms_remaining_capacity_ah", "bms_full_capacity_ah", "bms_cycle_count"):
        if (value := _float(plant_extra, name)) is not None:
            extra[name] = value
    extra["bms_alarm_flags"] = 0.0
    extra["bms_balance_current_a"] = 0.0
    return {"battery": out_battery, "extra": extra}


def _table(image: RegisterImage) -> None:
    holding = image.setdefault(RegisterType.HOLDING, {})
    for address in range(min(holding), LAST_REGISTER + 1):
        holding.setdefault(address, 0)


LAYOUT: Final = SiteLayout(
    name="jkbms",
    description="a JK-PB2A16S20P BMS (DIP address 1) on its RS485 Modbus port, 16 cells",
    devices=(
        SimulatedDevice(
            unit=UNIT,
            profile="jk_pb",
            role=Role.BATTERY,
            name="bms",
            served=JK_PB_SERVED,
            measures=bms,
            fill=_table,
            description="JK-PB2A16S20P battery BMS (jk_pb)",
        ),
    ),
)
