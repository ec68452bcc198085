"""EPEver Tracer (A/B/AN/BN series) MPPT solar charge controller.

Source: EPEver "LS-B, VS-B, Tracer-B, Tracer-A, iTracer, eTracer Series
Controller Protocol" V2.5, "Real-time data (read only) input register" from
0x3100, "Real-time status" from 0x3200 and "Statistical parameter (read only)
input register" from 0x3300, all read with function code 04. Addresses are the
PDU addresses themselves (V2.5, note 4: "the base address offset is 0x00").
Values are integers to be divided by the "Times" column (100 unless noted), and
32-bit values take two registers, L at the lower address then H: low word first
(V2.5, note 5: rated power 3000 W x 100 is 0x93E0 in 0x3002 and 0x0004 in 0x3003).

Besides what the edge polls (``TRACER``), a Tracer answers the "Rated data"
block 0x3000-0x300E (V2.5: 0x3000 PV array rated voltage, 0x3001 rated current,
0x3002/0x3003 rated power; 0x3004 rated battery voltage, 0x3005 rated charging
current, 0x3006/0x3007 rated charging power; 0x3008 charging mode, 0000H
connect/disconnect, 0001H PWM, 0002H MPPT; 0x300E rated load current; 0x3009-0x300D
are not listed and read as 0 inside the block) and the statistical "Battery
voltage" 0x331A and "Battery current" 0x331B (L) / 0x331C (H), a signed 32-bit
value, > 0 charging. ``TRACER_SERVED`` adds them (``TRACER_UNPOLLED``) for the
simulator, so a third-party EPEver reader gets answers where a real Tracer gives them.

Identity: none read (drivers/identity.py): no register of the V2.5 tables used
here (real-time data, status, statistics, rated data) is a model, serial number
or firmware version; the catalogue's vendor is shown.

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

from drivers.bus import BusType
from drivers.planner import Hole
from drivers.profile import Point, PointBuilder, RegisterMap, target
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType, WordOrder
from telemetry.roles import Role

SOURCE: Final = "EPEver Tracer Controller Protocol V2.5, input registers 0x3000-0x331C"
TRACER_HOLES: Final = (
    # V2.5 lists nothing between the rated data (ending at 0x300E) and the
    # real-time data at 0x3100; the controller refuses reads there.
    Hole(RegisterType.INPUT, 0x300F, 0x30FF),
    # Tracer 3210A: "Count > 18 returns exception 02" from 0x3100, so 0x3112 (the
    # LS-B V1.1 "power component temperature") is refused; V2.5 lists nothing at
    # 0x3113-0x3119, before "Battery SOC" at 0x311A.
    Hole(RegisterType.INPUT, 0x3112, 0x3119),
    # V2.5 lists nothing at 0x311C, between 0x311B "Remote battery temperature" and
    # 0x311D; Tracer 3210A: "Reading 0x311A-0x311D as a block fails for any
    # unsupported address in the range", each of 0x311A, 0x311B, 0x311D read alone works.
    Hole(RegisterType.INPUT, 0x311C, 0x311C),
    # V2.5 lists nothing after 0x311D "Battery real rated voltage" before the
    # real-time status at 0x3200, nor after 0x3202 "Discharging equipment status"
    # before the statistics at 0x3300.
    Hole(RegisterType.INPUT, 0x311E, 0x31FF),
    Hole(RegisterType.INPUT, 0x3203, 0x32FF),
    # Tracer 3210A: "Count > 20 returns exception 02" from 0x3300; 0x3314-0x3315 (CO2
    # reduction) "confirmed unsupported", and V2.5 lists nothing at 0x3316-0x3319.
    Hole(RegisterType.INPUT, 0x3314, 0x3319),
    # V2.5 "Statistical parameter": 0x331A "Battery voltage" and 0x331B/0x331C
    # "Battery current" L/H are answered (third-party readers such as epevermodbus
    # read them); the LS-B V1.1 battery and ambient temperatures at 0x331D-0x331E
    # are not (Tracer 3210A: "confirmed unsupported").
    Hole(RegisterType.INPUT, 0x331D, 0x331E),
)


# V2.5 note 5: 32-bit values are "L" then "H"; most values are in 0.01 units.
_reg: Final = PointBuilder(RegisterType.INPUT, WordOrder.CDAB, scale=0.01)


U16, S16, U32, S32 = DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32

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
        _reg("Battery SOC", 0x311A, U16, "extra.charger_battery_soc_pct", 1.0),
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
        _reg("Generated energy today", 0x330C, U32, "solar.energy_today_wh", 10.0),
        _reg("Total generated energy", 0x3312, U32, "solar.energy_total_wh", 10.0),
    ),
)

# Registers a Tracer answers that the edge's poll leaves out (module docstring):
# the rated data never change, and the statistical battery voltage and current
# repeat 0x3104 and the charger's view of the battery. The simulator serves them.
TRACER_UNPOLLED: Final = (
    _reg("PV array rated voltage", 0x3000, U16, "extra.charger_rated_input_voltage_v"),
    _reg("PV array rated current", 0x3001, U16, "extra.charger_rated_input_current_a"),
    _reg("PV array rated power", 0x3002, U32, "extra.charger_rated_input_power_w"),
    _reg("Rated battery voltage", 0x3004, U16, "extra.charger_rated_battery_voltage_v"),
    _reg("Rated charging current", 0x3005, U16, "extra.charger_rated_charge_current_a"),
    _reg("Rated charging power", 0x3006, U32, "extra.charger_rated_charge_power_w"),
    _reg("Charging mode", 0x3008, U16, "extra.charger_charging_mode", 1.0),
    _reg("Rated load current", 0x300E, U16, "extra.charger_rated_load_current_a"),
    _reg("Statistical battery voltage", 0x331A, U16, "extra.charger_stat_battery_voltage_v"),
    _reg("Statistical battery current", 0x331B, S32, "extra.charger_stat_battery_current_a"),
)
# V2.5 0x3008 "Charging mode": 0002H MPPT.
CHARGING_MODE_MPPT: Final = 2

TRACER_SERVED: Final = RegisterMap(
    name="epever_tracer",
    source=SOURCE,
    holes=TRACER_HOLES,
    points=TRACER.points + TRACER_UNPOLLED,
)


PROFILES: Final = (
    DeviceProfile(
        name="epever_tracer",
        vendor="EPEver",
        models="Tracer A/B/AN/BN MPPT charge controllers (protocol V2.5)",
        role=Role.SOLAR,
        register_map=TRACER,
        source=SOURCE,
        transports=frozenset({BusType.RTU}),
        config_name="charger",
        # V2.5 rated data: 0x3000 PV array rated voltage (V x 100), 0x3004 rated
        # battery voltage (a 12/24/36/48 V class), 0x3008 charging mode (0
        # connect/disconnect, 1 PWM, 2 MPPT).
        signature=Signature(
            "EPEver Tracer charge controller (rated data 0x3000-0x3008)",
            (
                Check(RegisterType.INPUT, 0x3000, DataType.UINT16, 10.0, 250.0, scale=0.01),
                Check(RegisterType.INPUT, 0x3004, DataType.UINT16, 12.0, 48.0, scale=0.01),
                Check(RegisterType.INPUT, 0x3008, DataType.UINT16, 0, 2),
            ),
        ),
    ),
)
