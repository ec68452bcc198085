"""Huawei SUN2000 inverters, with the DTSU666-H meter and LUNA2000 battery reached through them.

Source: Huawei "Solar Inverter Modbus Interface Definitions" (V3.0, issue 05,
2023-02-16; the same tables as issue 02 of 2021-03-26), "Register definitions":
the inverter equipment table (30000 model ... 32114 daily energy yield), the
power meter table (37100-37138, "[Power meter collection]") and the energy
storage table (37000-37068 for unit 1, 37760-37787 for the whole "[Energy
storage]"). Every register is read with function 03 at the address the table
gives (no offset). 32-bit values are two registers, high word first (I32/U32,
"Quantity 2"). A value is the raw integer divided by its "Gain"; where the table
says kW with gain 1000 (32064, 32080, 37113, 37132-37136, 37765) that is W with
gain 1, which is how the meter table of issue 05 lists 37113.

Signs (the tables' "Scope" column): the meter's active power 37113 and phase
powers 37132-37136 are "> 0: feed-in to the power grid, < 0: supply from the
power grid", the opposite of docs/protocol.md "Signs", so their scale is
negative. 37119 "Positive active electricity" is "electricity fed by the
inverter to the power grid" (export) and 37121 "Reverse active power" is "power
supplied ... from the power grid" (import), both kWh x 100. The storage's
charge/discharge power (37001, 37765) is "> 0: charging, < 0: discharging",
again negative here; the document gives no sign for the bus current 37764, which
the LUNA2000 reports with the power's sign. The inverter's active power 32080 is
> 0 when it delivers to the AC side, as ours.

Models: the single-phase L1 (SUN2000-2..6KTL-L1, model IDs 343-351 at 30070)
gives its AC voltage and current at 32066 "Power grid voltage" and 32072 "Power
grid current"; on the three-phase MA family (M0, M1, M2, M3: model IDs 400-469)
32066-32068 are line voltages, 32069-32071 phase voltages and 32072-32076 phase
currents. Those are two maps (``L1`` and ``M``). A battery's registers are read
only where one is fitted: an inverter without a LUNA2000 answers exception 02 to
the storage block (wlcrs/huawei_solar issues 35 and 573: "reading from register
37760 with length 28: IllegalAddress" on SUN2000L with no LUNA2000), so each map
comes with and without the battery.

Read limits. The document states no longest read; we take 64 registers, the
longest batch of wlcrs/huawei-solar-lib (``MAX_BATCHED_REGISTERS_COUNT``), which
Home Assistant installations read every few seconds, with its gap of 16. That
library reads 32064 x 52 (across 32096-32105, which the tables leave out) and
37760 x 28 on inverters with a battery (issue 1056's log), so a poll is three or
four requests: 32016 x 4 (PV1/PV2), 32064 x 52, 37101 x 37 (meter), 37760 x 28
(battery). Ranges the tables list nothing in and that no reader is known to
read across are kept out of every plan (``HOLES``): the simulator refuses them.

Quirks: the inverter needs time after a TCP connect before it answers (the
library waited 1 s after connecting from 2022, and 1.5 s after every (re)connect
since 2023-03: "the device needs a bit of time between the connection and the
first request ... else it will fail"); it serves one Modbus TCP client, and a new
connection closes the one before it (wlcrs/huawei_solar issue 13, the
maintainer: "The device will always close the previous connection when another
connection is made to that 502 modbus port").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from drivers.bus import BusType
from drivers.identity import IdentityField, identity_map, text_point
from drivers.planner import Hole
from drivers.profile import Point, PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

__all__ = [
    "BATTERY_STATES",
    "INVERTER_STATES",
    "L1",
    "L1_LUNA",
    "M_LUNA",
    "PROFILES",
    "SERVED_L1_LUNA",
    "M",
]

SOURCE: Final = (
    "Huawei Solar Inverter Modbus Interface Definitions V3.0 (issue 05, 2023-02-16): "
    "inverter equipment, power meter and energy storage register tables"
)
HUAWEI_MAX_REGISTERS: Final = 64
HUAWEI_MAX_GAP: Final = 16
SETTLE_S: Final = 1.5

_H = RegisterType.HOLDING
U16, I16, U32, I32 = DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32

# Address ranges the tables list nothing in, between the blocks a poll reads.
HOLES: Final = (
    Hole(_H, 32011, 32015),  # after "Alarm 3" (32010), before "PV1 voltage" (32016)
    Hole(_H, 37139, 37199),  # after the meter (37138), before the optimizers (37200)
    Hole(_H, 37788, 37798),  # after "Current-day discharge capacity" (37786/7)
)

# 32089 "Device status" -> protocol inverter.state (names shortened from the table's).
INVERTER_STATES: Final = (
    (0x0000, "standby_initializing"),
    (0x0001, "standby_insulation_check"),
    (0x0002, "standby_irradiation_check"),
    (0x0003, "standby_grid_detecting"),
    (0x0100, "starting"),
    (0x0200, "on_grid"),
    (0x0201, "on_grid_power_limited"),
    (0x0202, "on_grid_self_derating"),
    (0x0203, "off_grid"),
    (0x0300, "shutdown_fault"),
    (0x0301, "shutdown_command"),
    (0x0302, "shutdown_ovgr"),
    (0x0303, "shutdown_comm_lost"),
    (0x0304, "shutdown_power_limited"),
    (0x0305, "shutdown_manual_start_needed"),
    (0x0306, "shutdown_dc_switch_off"),
    (0x0307, "shutdown_rapid_cutoff"),
    (0x0308, "shutdown_input_underpower"),
    (0x0401, "grid_scheduling_cosphi_p"),
    (0x0402, "grid_scheduling_q_u"),
    (0x0403, "grid_scheduling_pf_u"),
    (0x0404, "grid_scheduling_dry_contact"),
    (0x0405, "grid_scheduling_q_p"),
    (0x0500, "spot_check_ready"),
    (0x0501, "spot_checking"),
    (0x0600, "inspecting"),
    (0x0700, "afci_self_check"),
    (0x0800, "iv_scanning"),
    (0x0900, "dc_input_detection"),
    (0x0A00, "off_grid_charging"),
    (0xA000, "standby_no_irradiation"),
)
# 37762 (and 37000) "Running status" -> protocol battery.state.
BATTERY_STATES: Final = (
    (0, "offline"),
    (1, "standby"),
    (2, "running"),
    (3, "fault"),
    (4, "sleep"),
)


_reg: Final = PointBuilder(_H)


# Inverter block, both families. 32016-32019: PV1/PV2 V x 10 and A x 100 (signed).
_PV: Final = (
    _reg("PV1 voltage", 32016, I16, "extra.pv1_voltage_v", 0.1),
    _reg("PV1 current", 32017, I16, "extra.pv1_current_a", 0.01),
    _reg("PV2 voltage", 32018, I16, "extra.pv2_voltage_v", 0.1),
    _reg("PV2 current", 32019, I16, "extra.pv2_current_a", 0.01),
)
_COMMON: Final = (
    # 32064 "Input power" (kW x 1000 = W): the PV strings' DC power.
    _reg("Input power", 32064, I32, "inverter.dc_power_w"),
    # 32080 "Active power" (kW x 1000 = W), > 0 delivered to the AC side.
    _reg("Active power", 32080, I32, "inverter.ac_power_w"),
    _reg("Grid frequency", 32085, U16, "inverter.ac_frequency_hz", 0.01),
    _reg("Internal temperature", 32087, I16, "inverter.temperature_c", 0.1),
    _reg("Device status", 32089, U16, "inverter.state", states=INVERTER_STATES),
    # 32106 "Accumulated energy yield" and 32114 "Daily energy yield": kWh x 100.
    _reg("Accumulated energy yield", 32106, U32, "inverter.energy_total_wh", 10.0),
    _reg("Daily energy yield", 32114, U32, "solar.energy_today_wh", 10.0),
)
_L1_AC: Final = (
    # L1: 32066 "Power grid voltage" (V x 10), 32072 "Power grid current" (A x 1000).
    _reg("Power grid voltage", 32066, U16, "inverter.ac_voltage_v", 0.1),
    _reg("Power grid current", 32072, I32, "inverter.ac_current_a", 0.001),
)
_M_AC: Final = (
    _reg("Line voltage A-B", 32066, U16, "extra.inverter_line_voltage_ab_v", 0.1),
    _reg("Line voltage B-C", 32067, U16, "extra.inverter_line_voltage_bc_v", 0.1),
    _reg("Line voltage C-A", 32068, U16, "extra.inverter_line_voltage_ca_v", 0.1),
    _reg("Phase A voltage", 32069, U16, "inverter.ac_voltage_v", 0.1),
    _reg("Phase B voltage", 32070, U16, "extra.inverter_voltage_l2_v", 0.1),
    _reg("Phase C voltage", 32071, U16, "extra.inverter_voltage_l3_v", 0.1),
    _reg("Phase A current", 32072, I32, "extra.inverter_current_l1_a", 0.001),
    _reg("Phase B current", 32074, I32, "extra.inverter_current_l2_a", 0.001),
    _reg("Phase C current", 32076, I32, "extra.inverter_current_l3_a", 0.001),
)
# Power meter (DTSU666-H three-phase, DDSU666-H single-phase), read through the inverter.
_METER: Final = (
    _reg("Meter phase A voltage", 37101, I32, "grid.phase_voltage_v[0]", 0.1),
    _reg("Meter phase B voltage", 37103, I32, "grid.phase_voltage_v[1]", 0.1),
    _reg("Meter phase C voltage", 37105, I32, "grid.phase_voltage_v[2]", 0.1),
    _reg("Meter phase A current", 37107, I32, "extra.grid_phase_current_l1_a", 0.01),
    _reg("Meter phase B current", 37109, I32, "extra.grid_phase_current_l2_a", 0.01),
    _reg("Meter phase C current", 37111, I32, "extra.grid_phase_current_l3_a", 0.01),
    # "> 0: feed-in to the power grid": negated to ours (> 0 importing).
    _reg("Meter active power", 37113, I32, "grid.power_w", -1.0),
    _reg("Meter power factor", 37117, I16, "grid.power_factor", 0.001),
    _reg("Meter grid frequency", 37118, I16, "grid.frequency_hz", 0.01),
    # kWh x 100 -> Wh x 10. 37119 is what went to the grid, 37121 what came from it.
    _reg("Positive active electricity", 37119, I32, "grid.export_energy_wh", 10.0),
    _reg("Reverse active power", 37121, I32, "grid.import_energy_wh", 10.0),
    _reg("Meter phase A active power", 37132, I32, "grid.phase_power_w[0]", -1.0),
    _reg("Meter phase B active power", 37134, I32, "grid.phase_power_w[1]", -1.0),
    _reg("Meter phase C active power", 37136, I32, "grid.phase_power_w[2]", -1.0),
)
# LUNA2000, the whole "[Energy storage]" (all units together).
_BATTERY: Final = (
    _reg("Storage SOC", 37760, U16, "battery.soc_pct", 0.1),
    _reg("Storage running status", 37762, U16, "battery.state", states=BATTERY_STATES),
    _reg("Storage bus voltage", 37763, U16, "battery.voltage_v", 0.1),
    # > 0 charging on the device (module docstring): negated to ours.
    _reg("Storage bus current", 37764, I16, "battery.current_a", -0.1),
    _reg("Storage charge/discharge power", 37765, I32, "battery.power_w", -1.0),
    _reg("Storage total charge", 37780, U32, "extra.battery_charged_energy_wh", 10.0),
    _reg("Storage total discharge", 37782, U32, "extra.battery_discharged_energy_wh", 10.0),
    _reg("Storage day charge", 37784, U32, "extra.battery_charged_today_wh", 10.0),
    _reg("Storage day discharge", 37786, U32, "extra.battery_discharged_today_wh", 10.0),
)


def _derive(three_phase: bool) -> Callable[[Sections], None]:
    def derive(sections: Sections) -> None:
        inverter = sections.get("inverter", {})
        dc = inverter.get("dc_power_w")
        if isinstance(dc, float):
            # The hybrid's input power is its PV strings' power; never below 0 W.
            sections.setdefault("solar", {})["pv_power_w"] = max(0.0, dc)
        extra = sections.get("extra", {})
        if three_phase:
            currents = [extra.get(f"inverter_current_l{i}_a") for i in (1, 2, 3)]
            if all(isinstance(c, float) for c in currents):
                inverter["ac_current_a"] = round(
                    sum(c for c in currents if isinstance(c, float)), 3
                )
        grid = sections.get("grid", {})
        volts = grid.get("phase_voltage_v")
        if isinstance(volts, list) and volts:
            # A single-phase meter leaves B and C at 0 V: average the live phases.
            live = [v for v in volts if v > 0.0]
            if live:
                grid["voltage_v"] = round(sum(live) / len(live), 2)
        amps = [extra.get(f"grid_phase_current_l{i}_a") for i in (1, 2, 3)]
        if all(isinstance(a, float) for a in amps):
            grid["current_a"] = round(sum(abs(a) for a in amps if isinstance(a, float)), 2)

    return derive


def _map(name: str, ac: tuple[Point, ...], battery: bool, three_phase: bool) -> RegisterMap:
    return RegisterMap(
        name=name,
        source=SOURCE,
        points=_PV + ac + _COMMON + _METER + (_BATTERY if battery else ()),
        max_count=HUAWEI_MAX_REGISTERS,
        max_gap=HUAWEI_MAX_GAP,
        holes=HOLES,
        derive=_derive(three_phase),
    )


L1: Final = _map("huawei_sun2000_l1", _L1_AC, battery=False, three_phase=False)
L1_LUNA: Final = _map("huawei_sun2000_l1_luna", _L1_AC, battery=True, three_phase=False)
M: Final = _map("huawei_sun2000_m", _M_AC, battery=False, three_phase=True)
M_LUNA: Final = _map("huawei_sun2000_m_luna", _M_AC, battery=True, three_phase=True)

# Registers an inverter answers that a poll leaves out (they never change): the
# simulator serves them, and ``ems edge scan`` reads the model and its ID.
IDENTITY: Final = (
    Point("Model", 30000, _H, DataType.STRING, length=15, constant="SUN2000-5KTL-L1"),
    Point("SN", 30015, _H, DataType.STRING, length=10, constant="EMSSIM0001"),
    # 30070 "Model ID": 344 is SUN2000-5KTL-L1 (document's model table).
    Point("Model ID", 30070, _H, U16, constant=344),
    Point("Number of PV strings", 30071, _H, U16, constant=2),
    Point("Number of MPP trackers", 30072, _H, U16, constant=2),
    # 30073 "Rated power (Pn)", kW x 1000 = W.
    _reg("Rated power", 30073, U32, "extra.inverter_rated_power_w"),
    _reg("Maximum active power", 30075, U32, "extra.inverter_rated_power_w"),
    # 37125 "Meter type": 1 three-phase; 37100 "Meter status": 1 normal.
    Point("Meter status", 37100, _H, U16, constant=1),
    Point("Meter type", 37125, _H, U16, constant=1),
)
SERVED_L1_LUNA: Final = RegisterMap(
    name="huawei_sun2000_l1_luna",
    source=SOURCE,
    points=IDENTITY + L1_LUNA.points,
    max_count=HUAWEI_MAX_REGISTERS,
    max_gap=HUAWEI_MAX_GAP,
    holes=HOLES,
)

# The identity read once per connection (drivers/identity.py): the inverter
# equipment table's 30000 "Model" (STR, quantity 15) and 30015 "SN" (STR, quantity
# 10), one request of 25 registers. The table's firmware and software versions are
# not read: the simulated inverter serves neither.
IDENTITY_MAP: Final = identity_map(
    "huawei_sun2000",
    f"{SOURCE}: 30000 Model, 30015 SN",
    (
        text_point(IdentityField.MODEL, _H, 30000, 15),
        text_point(IdentityField.SERIAL_NUMBER, _H, 30015, 10),
    ),
    max_count=HUAWEI_MAX_REGISTERS,
    holes=HOLES,
)

# ``ems edge scan``: the model name at 30000 (15 registers, "SUN2000-5KTL-L1"),
# the model ID at 30070 (L1: 343-351; MA family M0-M3: 400-469) and, for the
# battery profiles, the storage SOC at 37760 (refused without a LUNA2000).
_MODEL: Final = Check.text(_H, 30000, 15, "SUN2000")
_L1_ID: Final = Check(_H, 30070, U16, 343, 351)
_M_ID: Final = Check(_H, 30070, U16, 400, 469)
_SOC: Final = Check(_H, 37760, U16, 0, 100, scale=0.1)

_NOTES: Final = (
    "Modbus TCP through the SDongle (unit id 1) or the inverter's own WLAN access "
    "point (192.168.200.1, port 6607 or 502, unit id 0); Modbus TCP must be enabled "
    "in the inverter's communication settings. RS485 (COM port, bus 1) at 9600 baud, "
    "8N1, unit id as set on the inverter.",
    "One Modbus TCP client at a time: a new connection closes the one before, so the "
    "agent must be the only client (FusionSolar's cloud link is not a Modbus client).",
    "After a connect the inverter answers nothing for about a second: the driver "
    f"waits {SETTLE_S} s before its first request.",
    "The meter (DTSU666-H or DDSU666-H) and LUNA2000 are read from the inverter's "
    "unit id; grid and battery signs are converted to the protocol's.",
)


def _profile(
    name: str, models: str, reg_map: RegisterMap, checks: tuple[Check, ...], what: str
) -> DeviceProfile:
    return DeviceProfile(
        name=name,
        vendor="Huawei",
        models=models,
        role=Role.INVERTER,
        register_map=reg_map,
        source=SOURCE,
        transports=frozenset({BusType.RTU, BusType.TCP}),
        default_unit=1,
        units=(0,),
        settle_s=SETTLE_S,
        single_client=True,
        config_name="inverter",
        signature=Signature(what, checks),
        identity=IDENTITY_MAP,
        notes=_NOTES,
    )


PROFILES: Final = (
    _profile(
        "huawei_sun2000_l1_luna",
        "SUN2000-2..6KTL-L1 single-phase hybrid with LUNA2000 battery and power meter",
        L1_LUNA,
        (_MODEL, _L1_ID, _SOC),
        "Huawei SUN2000 L1 with LUNA2000 (model 30000, model ID 30070, storage SOC 37760)",
    ),
    _profile(
        "huawei_sun2000_l1",
        "SUN2000-2..6KTL-L1 single-phase inverter with power meter, no battery",
        L1,
        (_MODEL, _L1_ID),
        "Huawei SUN2000 L1 (model 30000, model ID 30070)",
    ),
    _profile(
        "huawei_sun2000_m_luna",
        "SUN2000 M0/M1/M2 three-phase (hybrid M1) with LUNA2000 battery and power meter",
        M_LUNA,
        (_MODEL, _M_ID, _SOC),
        "Huawei SUN2000 M0-M3 with LUNA2000 (model 30000, model ID 30070, storage SOC 37760)",
    ),
    _profile(
        "huawei_sun2000_m",
        "SUN2000 M0/M1/M2 three-phase inverter with power meter, no battery",
        M,
        (_MODEL, _M_ID),
        "Huawei SUN2000 M0-M3 (model 30000, model ID 30070)",
    ),
)
