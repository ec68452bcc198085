"""Fronius GEN24 (Primo/Symo GEN24 Plus with BYD storage) and its Smart Meter: SunSpec, discovered.

Sources: Fronius "Datamanager Modbus TCP & RTU" operating instructions
(42,0410,2049), register 40216 ``F_ModelType`` ("Type of SunSpec models used for
inverter and meter data": 1 floating point, 2 integer & SF) and its SunSpec
register tables; the Fronius GEN24 SunSpec register maps
(Gen24_Primo_Symo_Inverter_Register_Map_Float/Int&SF, storage variants) as
transcribed by callifo/fronius_modbus (the int+SF addresses: 103 at 40069, 160 at
40253 with four modules, 124 at 40343; ``ChaState_SF``, ``MinRsvPct_SF`` and
``InOutWRte_SF`` = -2; ``InBatV`` and ``StorAval`` "not supported") and by
Tinkerforge's esp32-firmware (the float map is the int one moved by 10 from model
113 on, because 113 is 10 registers longer than 103).

Why discovery and not a fixed map: the inverter answers with the float models
(111-113, meter 211-214) or the integer ones (101-103, 201-204) as the web
interface's "SunSpec Model Type" says, every address after the inverter model
moves with it, and a GEN24 without storage has two MPPT modules instead of
four and no model 124. The chain (1, 103|113, 120-123, 160, 124) is walked once
and read with :mod:`drivers.profiles.sunspec`'s own rows; both settings work.

Storage: the GEN24 reports its battery's DC side in model 160 as modules 3
("StCha 3", the charge power) and 4 ("StDisCha 4", the discharge power), each
a positive uint16 (Tinkerforge: "Fronius GEN24 Plus abuses MPPT 3 and 4 of
SunSpec model 160 to report battery information"; callifo: storage power =
module 4 - module 3). When the chain has model 124 and four modules, modules 3
and 4 are the battery: ``battery.power_w`` = discharge - charge (the protocol's
sign), ``battery.voltage_v`` from their DC voltage (model 124's ``InBatV`` is not
supported), and ``solar`` sums modules 1 and 2 only. State of charge and charge
status are model 124's ``ChaState`` and ``ChaSt``.

The Smart Meter (TS 65A-3, TS 5kA-3, 63A) is reached through the inverter at
unit id 200 (evcc's fronius-gen24 template: ``id: 200``; further meters at 201
and up): its own chain, common model then 203 (int+SF) or 213 (float). Its
power is import-positive, SunSpec's convention (callifo computes the house
load as meter power + inverter power), so it needs no sign change.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from drivers.bus import BusType
from drivers.profile import Point, RegisterMap, Sections, target
from drivers.profiles import sunspec
from drivers.profiles.device_profile import DeviceProfile
from telemetry.roles import Role

SOURCE: Final = (
    "Fronius Datamanager Modbus TCP & RTU operating instructions (42,0410,2049): register "
    "maps, F_ModelType (40216); Fronius GEN24 SunSpec register maps (float and int+SF, storage)"
)
MANUFACTURER: Final = "Fronius"  # the common model's Mn
METER_UNIT: Final = 200  # the primary Smart Meter behind a GEN24
STORAGE_MODULES: Final = {3: "charge", 4: "discharge"}  # model 160: "StCha 3", "StDisCha 4"


def _storage_point(point: Point) -> Point:
    """Model 160 modules 3 and 4 retargeted from PV trackers to the battery's DC side."""
    _, _, module, field = point.name.split(".")
    kind = STORAGE_MODULES[int(module.removeprefix("module"))]
    paths = {
        "DCW": f"extra.battery_{kind}_power_w",
        "DCV": f"extra.battery_{kind}_voltage_v",
        "DCA": f"extra.battery_{kind}_current_a",
        "DCWH": f"extra.battery_{kind}_energy_wh",
    }
    path = paths.get(field)
    return dataclasses.replace(point, target=None if path is None else target(path))


def _has_storage(chain: sunspec.Chain) -> bool:
    ids = {m.model_id for m in chain.models}
    mppt = [m for m in chain.models if m.model_id == 160]
    four = bool(mppt) and mppt[0].length == sunspec.MPPT_FIXED + 4 * sunspec.MPPT_MODULE
    return 124 in ids and four


def _is_storage_module(point: Point) -> bool:
    parts = point.name.split(".")
    return len(parts) == 4 and parts[1] == "160" and parts[2] in ("module3", "module4")


def _derive(sections: Sections) -> None:
    """Solar from modules 1-2 (sunspec's derive), the battery from modules 3 and 4."""
    sunspec.derive_solar(sections)
    extra = sections.get("extra", {})
    charge, discharge = extra.get("battery_charge_power_w"), extra.get("battery_discharge_power_w")
    if isinstance(charge, float) and isinstance(discharge, float):
        battery = sections.setdefault("battery", {})
        battery["power_w"] = round(discharge - charge, 3)
        amps_in, amps_out = (
            extra.get("battery_charge_current_a"),
            extra.get("battery_discharge_current_a"),
        )
        if isinstance(amps_in, float) and isinstance(amps_out, float):
            battery["current_a"] = round(amps_out - amps_in, 3)
        volts = [
            v
            for v in (
                extra.get("battery_charge_voltage_v"),
                extra.get("battery_discharge_voltage_v"),
            )
            if isinstance(v, float) and v > 0.0
        ]
        if volts and "voltage_v" not in battery:
            battery["voltage_v"] = max(volts)


def gen24_map(chain: sunspec.Chain) -> RegisterMap:
    """The discovered chain read the GEN24's way (modules 3 and 4 are the battery)."""
    base = sunspec.register_map(chain)
    if not _has_storage(chain):
        return dataclasses.replace(base, name="fronius_gen24", source=SOURCE)
    points = tuple(_storage_point(p) if _is_storage_module(p) else p for p in base.points)
    return dataclasses.replace(
        base, name="fronius_gen24", source=SOURCE, points=points, derive=_derive
    )


# The int+SF chains of the GEN24 maps, for the catalogue: 103, 120-123, 160 (four
# modules) and 124 on the inverter; 203 on the meter. Common models are 65 long.
GEN24_CHAIN: Final = sunspec.Chain(
    40000,
    tuple(
        sunspec.ModelHeader(model_id, address, length)
        for model_id, address, length in (
            (1, 40002, 65),
            (103, 40069, 50),
            (120, 40121, 26),
            (121, 40149, 30),
            (122, 40181, 44),
            (123, 40227, 24),
            (160, 40253, 88),
            (124, 40343, 24),
        )
    ),
)
METER_CHAIN: Final = sunspec.Chain(
    40000, (sunspec.ModelHeader(1, 40002, 65), sunspec.ModelHeader(203, 40069, 105))
)

_INVERTERS: Final = (101, 102, 103, 111, 112, 113)
_METERS: Final = (201, 202, 203, 204, 211, 212, 213, 214)

PROFILES: Final = (
    DeviceProfile(
        name="fronius_gen24",
        vendor="Fronius",
        models="Primo GEN24 (Plus), Symo GEN24 (Plus) with BYD Battery-Box Premium, Tauro",
        role=Role.INVERTER,
        register_map=None,
        source=SOURCE,
        config_name="inverter",
        sunspec_manufacturer=MANUFACTURER,
        sunspec_models=_INVERTERS,
        sunspec_map=gen24_map,
        sunspec_example=GEN24_CHAIN,
        transports=frozenset({BusType.TCP}),
        notes=(
            "Modbus TCP on port 502, unit id 1: web interface > Communication > Modbus, "
            "'Modbus slave as TCP' on.",
            "Either 'SunSpec Model Type' works (float or int + SF): the chain is discovered.",
            "The battery is read from model 124 (state of charge, charge status) and "
            "model 160 modules 3 and 4 (charge and discharge power).",
            "The Smart Meter is a separate unit (200): profile 'fronius_smart_meter'.",
        ),
    ),
    DeviceProfile(
        name="fronius_smart_meter",
        vendor="Fronius",
        models="Fronius Smart Meter (TS 65A-3, TS 5kA-3, 63A-3) behind a GEN24, at unit id 200",
        role=Role.GRID,
        register_map=None,
        source=SOURCE,
        default_unit=METER_UNIT,
        units=(201, 202),
        config_name="meter",
        sunspec_manufacturer=MANUFACTURER,
        sunspec_models=_METERS,
        sunspec_example=METER_CHAIN,
        transports=frozenset({BusType.TCP}),
        notes=(
            "Served by the inverter's Modbus TCP at unit id 200 (further meters 201 and up).",
            "Model 203 (int + SF) or 213 (float), as the inverter's SunSpec Model Type says.",
        ),
    ),
)

__all__ = [
    "GEN24_CHAIN",
    "MANUFACTURER",
    "METER_CHAIN",
    "METER_UNIT",
    "PROFILES",
    "SOURCE",
    "gen24_map",
]
