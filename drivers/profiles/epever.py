"""EPEver Tracer (A/B/AN/BN series) MPPT solar charge controller.

Source: EPEver "LS-B, VS-B, Tracer-B, Tracer-A, iTracer, eTracer Series
Controller Protocol" V2.5, "Real-time data (read only) input register" from
0x3100 and "Statistical parameter (read only) input register" from 0x3300.
Values are integers to be divided by 100 (the "Times" column: 100), and 32-bit
values take two registers, L at the lower address then H: low word first.

Registers 0x3113-0x3119 are not in the table; the planner bridges them (the
controller answers the whole 0x3100 block), keeping a full poll at two requests.
"""

from __future__ import annotations

from typing import Final

from drivers.profile import Point, RegisterMap, target
from drivers.registers import DataType, RegisterType, WordOrder

SOURCE: Final = "EPEver Tracer Controller Protocol V2.5, input registers 0x3100-0x3313"


def _reg(
    name: str,
    address: int,
    data_type: DataType,
    path: str,
    scale: float = 0.01,
) -> Point:
    return Point(
        name=name,
        address=address,
        register_type=RegisterType.INPUT,
        data_type=data_type,
        target=target(path),
        word_order=WordOrder.CDAB,  # V2.5: 32-bit values are "L" then "H"
        scale=scale,
    )


U16, S16, U32 = DataType.UINT16, DataType.INT16, DataType.UINT32

TRACER: Final = RegisterMap(
    name="epever_tracer",
    source=SOURCE,
    points=(
        _reg("PV array input voltage", 0x3100, U16, "solar.pv_voltage_v"),
        _reg("PV array input current", 0x3101, U16, "solar.pv_current_a"),
        _reg("PV array input power", 0x3102, U32, "solar.pv_power_w"),
        _reg("Battery voltage", 0x3104, U16, "extra.charger_battery_voltage_v"),
        _reg("Battery charging current", 0x3105, U16, "extra.charger_battery_current_a"),
        _reg("Battery charging power", 0x3106, U32, "extra.charger_output_power_w"),
        _reg("Battery temperature", 0x3110, S16, "extra.charger_battery_temperature_c"),
        _reg("Temperature inside equipment", 0x3111, S16, "extra.charger_temperature_c"),
        # V2.5 lists SOC in percent with "Times" 1.
        _reg("Battery SOC", 0x311A, U16, "extra.charger_battery_soc_pct", scale=1.0),
        # 0x3201 "Charging equipment status", D3-D2: 0 no charging, 1 float, 2 boost,
        # 3 equalization.
        Point(
            name="Charging equipment status",
            address=0x3201,
            register_type=RegisterType.INPUT,
            data_type=U16,
            target=target("extra.charger_charging_status"),
            shift=2,
            mask=0b11,
        ),
        # kWh / 100 -> Wh: x 10.
        _reg("Generated energy today", 0x330C, U32, "solar.energy_today_wh", scale=10.0),
        _reg("Total generated energy", 0x3312, U32, "solar.energy_total_wh", scale=10.0),
    ),
)
