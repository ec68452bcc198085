"""EPEver Tracer (A/B/AN/BN series) MPPT solar charge controller.

Source: EPEver "LS-B, VS-B, Tracer-B, Tracer-A, iTracer, eTracer Series
Controller Protocol" V2.5, "Real-time data (read only) input register" from
0x3100, "Real-time status" from 0x3200 and "Statistical parameter (read only)
input register" from 0x3300, all read with function code 04. Addresses are the
PDU addresses themselves (V2.5, note 4: "the base address offset is 0x00").
Values are integers to be divided by the "Times" column (100 unless noted), and
32-bit values take two registers, L at the lower address then H: low word first
(V2.5, note 5: rated power 3000 W x 100 is 0x93E0 in 0x3002 and 0x0004 in 0x3003).

Unreadable ranges (``TRACER_HOLES``): the vendor's tables have holes, and a
Tracer 3210A answers exception 02 to any read touching some of them (raw dumps
recorded in peterxxl/dbus-epever-tracer, epsolar_modbus_protocol_map.md,
"Tracer 3210A Compatibility Notes"); the widely used Victron driver
(kassl-2007/dbus-epever-tracer) reads exactly 0x3100 x 18, 0x3200 x 3 and
0x3300 x 20. The map lists them, so no plan reads them and our simulator refuses
them as the device does. A full poll is four requests: 0x3100 x 18, 0x311A x 1,
0x3201 x 1 and 0x330C x 8 (bridging 0x3108-0x310B, which that controller answers
inside its 18, and 0x330E-0x3311, documented "this month" and "this year"
counters); ``max_gap`` keeps the default, a cost choice only.
"""

from __future__ import annotations

from typing import Final

from drivers.planner import Hole
from drivers.profile import Point, RegisterMap, target
from drivers.registers import DataType, RegisterType, WordOrder

SOURCE: Final = "EPEver Tracer Controller Protocol V2.5, input registers 0x3100-0x3313"
TRACER_HOLES: Final = (
    # Tracer 3210A: the "rated data" block 0x3000-0x300E: "Every attempt returns
    # exception 02".
    Hole(RegisterType.INPUT, 0x3000, 0x300E),
    # Tracer 3210A: "Count > 18 returns exception 02" from 0x3100, so 0x3112 (the
    # LS-B V1.1 "power component temperature") is refused; V2.5 lists nothing at
    # 0x3113-0x3119, before "Battery SOC" at 0x311A.
    Hole(RegisterType.INPUT, 0x3112, 0x3119),
    # V2.5 lists nothing at 0x311C, between 0x311B "Remote battery temperature" and
    # 0x311D; Tracer 3210A: "Reading 0x311A-0x311D as a block fails for any
    # unsupported address in the range", each of 0x311A, 0x311B, 0x311D read alone works.
    Hole(RegisterType.INPUT, 0x311C, 0x311C),
    # Tracer 3210A: "Count > 20 returns exception 02" from 0x3300; 0x3314-0x3315 (CO2
    # reduction) and 0x331B-0x331E (net battery current, temperatures) "confirmed
    # unsupported", and V2.5 lists nothing at 0x3316-0x331A.
    Hole(RegisterType.INPUT, 0x3314, 0x331E),
)


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
        word_order=WordOrder.CDAB,  # V2.5 note 5: 32-bit values are "L" then "H"
        scale=scale,
    )


U16, S16, U32 = DataType.UINT16, DataType.INT16, DataType.UINT32

TRACER: Final = RegisterMap(
    name="epever_tracer",
    source=SOURCE,
    holes=TRACER_HOLES,
    points=(
        # V2.5 3100/3101: "PV array input voltage/current", V and A, times 100.
        _reg("PV array input voltage", 0x3100, U16, "solar.pv_voltage_v"),
        _reg("PV array input current", 0x3101, U16, "solar.pv_current_a"),
        # V2.5 3102 (L) / 3103 (H): "PV array input power", W, times 100.
        _reg("PV array input power", 0x3102, U32, "solar.pv_power_w"),
        # V2.5 3104/3105: "Battery voltage", "Battery charging current", times 100.
        _reg("Battery voltage", 0x3104, U16, "extra.charger_battery_voltage_v"),
        _reg("Battery charging current", 0x3105, U16, "extra.charger_battery_current_a"),
        # V2.5 3106 (L) / 3107 (H): "Battery charging power", W, times 100.
        _reg("Battery charging power", 0x3106, U32, "extra.charger_output_power_w"),
        # V2.5 310C/310D: "Load voltage", "Load current"; 310E (L) / 310F (H) "Load
        # power": the controller's DC load output, times 100 (LS-B V1.1 agrees).
        _reg("Load voltage", 0x310C, U16, "extra.charger_load_voltage_v"),
        _reg("Load current", 0x310D, U16, "extra.charger_load_current_a"),
        _reg("Load power", 0x310E, U32, "extra.charger_load_power_w"),
        # V2.5 3110/3111: degC, times 100; signed (below zero reads 0xFFxx).
        _reg("Battery temperature", 0x3110, S16, "extra.charger_battery_temperature_c"),
        _reg("Temperature inside equipment", 0x3111, S16, "extra.charger_temperature_c"),
        # V2.5 311A: "Battery SOC", %, times 1. The older LS-B protocol V1.1 lists
        # times 100 here (as copied in kasbert/epsolar-tracer); V2.5 and the raw
        # dumps of a Tracer 3210A (peterxxl/dbus-epever-tracer) say 1: we follow V2.5.
        _reg("Battery SOC", 0x311A, U16, "extra.charger_battery_soc_pct", scale=1.0),
        # V2.5 3201 "Charging equipment status", D3-D2: 00 no charging, 01 float,
        # 02 boost, 03 equalization (D0: 1 running, D1: 1 fault).
        Point(
            name="Charging equipment status",
            address=0x3201,
            register_type=RegisterType.INPUT,
            data_type=U16,
            target=target("extra.charger_charging_status"),
            shift=2,
            mask=0b11,
        ),
        # V2.5 330C (L) / 330D (H) "Generated energy today" and 3312 (L) / 3313 (H)
        # "Total generated energy": kWh, times 100 -> Wh is x 10.
        _reg("Generated energy today", 0x330C, U32, "solar.energy_today_wh", scale=10.0),
        _reg("Total generated energy", 0x3312, U32, "solar.energy_total_wh", scale=10.0),
    ),
)
