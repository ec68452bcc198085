"""The plant as an SMA installation: a Sunny Tripower for the PV, a Sunny Island for the battery.

Pure logic. ``ems sim --site sma`` serves two SMA devices on one Modbus TCP
port, as two devices of one plant reached through one address:

| unit | device | profile |
| --- | --- | --- |
| 3 | Sunny Tripower 8.0 (PV inverter, SMA's default unit id) | ``sma_inverter`` |
| 4 | Sunny Island 4.4M with the SMA Energy Meter (battery inverter) | ``sma_storage`` |

The plant's PV reaches its battery through a charge controller; here the PV
inverter delivers it on the AC side instead, and the battery inverter gives
the rest of the plant's inverter output: its AC power is the plant's inverter
AC power less the PV power, so the grid, the house and the two inverters still
add up (conversion losses aside). The PV inverter delivers its DC power on AC
(one string on input A, input B unused), and without sun it is "Off" with NaN
power and DC values, as SMA inverters are at night.

Both answer as SMA devices do (drivers/profiles/sma.py): function 0x03 and 0x04
alike, NaN for undefined registers inside a read, exception 02 for a read
with no defined register, status NaN 0xFFFFFD where a status is unknown; and
they serve the 64-bit energy counters other readers use (evcc, openWB).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from drivers.profile import RegisterImage, RegisterMap
from drivers.profiles.sma import (
    SMA_INVERTER_SERVED,
    SMA_STORAGE_SERVED,
    UNDEFINED_WORD,
    status_nan,
)
from drivers.registers import RegisterType
from simulation.layout import DeviceSections, PlantSections, SimulatedDevice, SiteLayout
from telemetry.roles import Role

PV_UNIT: Final = 3
STORAGE_UNIT: Final = 4


def _float(values: object, name: str) -> float | None:
    value = values.get(name) if isinstance(values, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _phase_volts(grid: dict[str, object]) -> list[float]:
    volts = grid.get("phase_voltage_v")
    return [float(v) for v in volts] if isinstance(volts, list) else []


def _ac_side(grid: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """The inverter's AC measurements (its terminals are the grid's): section, extra."""
    inverter: dict[str, object] = {}
    extra: dict[str, object] = {}
    volts = _phase_volts(grid)
    if len(volts) == 3:
        inverter["ac_voltage_v"] = volts[0]
        extra["inverter_ac_voltage_l2_v"] = volts[1]
        extra["inverter_ac_voltage_l3_v"] = volts[2]
    if (hz := _float(grid, "frequency_hz")) is not None:
        inverter["ac_frequency_hz"] = hz
    return inverter, extra


def pv_inverter(sections: PlantSections) -> DeviceSections:
    """What the Sunny Tripower measures: the PV and its AC output; no meter."""
    solar = dict(sections.get("solar", {}))
    grid = dict(sections.get("grid", {}))
    plant_inverter = dict(sections.get("inverter", {}))
    inverter, extra = _ac_side(grid)
    out: DeviceSections = {"inverter": inverter, "solar": {}, "extra": extra}
    if (total := _float(solar, "energy_total_wh")) is not None:
        inverter["energy_total_wh"] = total
    if (today := _float(solar, "energy_today_wh")) is not None:
        out["solar"]["energy_today_wh"] = today
    if (celsius := _float(plant_inverter, "temperature_c")) is not None:
        inverter["temperature_c"] = celsius
    pv = _float(solar, "pv_power_w") or 0.0
    if pv <= 0.0:
        inverter["state"] = "off"  # night: power and DC inputs read NaN
        return out
    inverter["state"] = "ok"
    inverter["ac_power_w"] = pv
    for n in (1, 2, 3):
        extra[f"inverter_phase_power_l{n}_w"] = pv / 3.0
    extra["pv1_power_w"] = pv
    extra["pv1_voltage_v"] = _float(solar, "pv_voltage_v") or 0.0
    extra["pv1_current_a"] = _float(solar, "pv_current_a") or 0.0
    for name in ("pv2_power_w", "pv2_voltage_v", "pv2_current_a"):
        extra[name] = 0.0  # nothing on input B
    return out


def _condition(plant_state: object) -> str:
    if plant_state == "fault":
        return "fault"
    return "off" if plant_state == "off" else "ok"


def battery_inverter(sections: PlantSections) -> DeviceSections:
    """What the Sunny Island measures: its AC side, the battery, the Energy Meter."""
    plant_inverter = dict(sections.get("inverter", {}))
    solar = dict(sections.get("solar", {}))
    grid = dict(sections.get("grid", {}))
    battery = dict(sections.get("battery", {}))
    plant_extra = dict(sections.get("extra", {}))
    inverter, extra = _ac_side(grid)
    inverter["state"] = _condition(plant_inverter.get("state"))
    ac = _float(plant_inverter, "ac_power_w")
    if ac is not None:
        inverter["ac_power_w"] = ac - (_float(solar, "pv_power_w") or 0.0)
    out: DeviceSections = {"inverter": inverter, "grid": {}, "battery": {}, "extra": extra}
    for name in ("import_energy_wh", "export_energy_wh"):
        if (value := _float(grid, name)) is not None:
            out["grid"][name] = value
    if (power := _float(grid, "power_w")) is not None:
        extra["grid_power_drawn_w"] = max(power, 0.0)
        extra["grid_power_fed_w"] = max(-power, 0.0)
    for name in ("soc_pct", "voltage_v", "temperature_c"):
        if (value := _float(battery, name)) is not None:
            out["battery"][name] = value
    if battery.get("state") in ("charging", "discharging"):
        out["battery"]["state"] = battery["state"]  # idle: the status reads NaN
    if (watts := _float(battery, "power_w")) is not None:
        extra["battery_charge_power_w"] = max(-watts, 0.0)
        extra["battery_discharge_power_w"] = max(watts, 0.0)
    if (amps := _float(battery, "current_a")) is not None:
        extra["battery_current_a"] = amps  # the protocol's sign; the decoder takes its size
    for plant_name, name in (
        ("bms_charged_energy_wh", "battery_ac_charged_energy_wh"),
        ("bms_discharged_energy_wh", "battery_ac_discharged_energy_wh"),
    ):
        if (value := _float(plant_extra, plant_name)) is not None:
            extra[name] = value
    return out


# 64-bit counters the lists give beside their 32-bit twins (U64, Wh), which
# third-party readers use: evcc's sma-sbs-modbus reads 30513 "Total yield" as
# uint64, openWB's SMA battery 31397 "Battery charge" / 31401 "Battery discharge".
# They hold the same counts here (the simulated counters have no separate 64-bit
# source; the battery's charge/discharge energy is its AC absorbed/released energy).
U64_TWINS_PV: Final = ((30513, 30529), (30517, 30535))
U64_TWINS_STORAGE: Final = ((31397, 30595), (31401, 30597))
U64_NAN: Final = (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF)  # TI 3.5.7


def _u64_twins(image: RegisterImage, twins: tuple[tuple[int, int], ...]) -> None:
    table = image.setdefault(RegisterType.INPUT, {})
    for wide, narrow in twins:
        high, low = table.get(narrow, 0xFFFF), table.get(narrow + 1, 0xFFFF)
        words = U64_NAN if (high, low) == (0xFFFF, 0xFFFF) else (0, 0, high, low)
        for i, word in enumerate(words):
            table[wide + i] = word


def _fill(
    reg_map: RegisterMap, twins: tuple[tuple[int, int], ...]
) -> Callable[[RegisterImage], None]:
    def fill(image: RegisterImage) -> None:
        status_nan(reg_map, image)
        _u64_twins(image, twins)
        # SMA answers function 0x03 as 0x04 for the same registers (evcc reads 30775
        # as input and 30845 as holding).
        image[RegisterType.HOLDING] = dict(image.get(RegisterType.INPUT, {}))

    return fill


LAYOUT: Final = SiteLayout(
    name="sma",
    description=(
        "an SMA plant on one address: Sunny Tripower (unit 3) and Sunny Island with "
        "the SMA Energy Meter (unit 4), SMA Modbus profile"
    ),
    devices=(
        SimulatedDevice(
            unit=PV_UNIT,
            profile="sma_inverter",
            role=Role.INVERTER,
            name="inverter",
            served=SMA_INVERTER_SERVED,
            measures=pv_inverter,
            fill=_fill(SMA_INVERTER_SERVED, U64_TWINS_PV),
            description="Sunny Tripower 8.0 (sma_inverter)",
            undefined=UNDEFINED_WORD,
        ),
        SimulatedDevice(
            unit=STORAGE_UNIT,
            profile="sma_storage",
            role=Role.BATTERY,
            name="battery",
            served=SMA_STORAGE_SERVED,
            measures=battery_inverter,
            fill=_fill(SMA_STORAGE_SERVED, U64_TWINS_STORAGE),
            description="Sunny Island 4.4M with SMA Energy Meter (sma_storage)",
            undefined=UNDEFINED_WORD,
        ),
    ),
)
