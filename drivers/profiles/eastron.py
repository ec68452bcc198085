"""Eastron SDM630 (three-phase) and SDM120 (single-phase) energy meters.

Source: Eastron "SDM630 Modbus Protocol" (V1.5/V2) and "SDM120 Modbus Protocol"
(V2.4), input register table ("Modbus Protocol Input Register Parameter
Addresses"). Every parameter is an IEEE 754 float32 in two input registers, high
word first; the documents list them as 3xxxx register numbers whose PDU address
is the number minus 30001 (e.g. 30053 -> 0x0034). The documents also limit a
request to 40 parameters, i.e. 80 registers ("Each request for data must be
restricted to 40 parameters or less").

Signs: active powers (30013-30017 per phase, 30053 total) are signed floats,
positive for forward current (import, at a grid connection point) and negative
for reverse current, like the power factor (table note 1: "positive refers to
forward current, negative refers to reverse current"; note 2: "the power sum
demand calculation is for import - export"). That is already the protocol's
convention for ``grid.power_w`` and ``grid.phase_power_w``. Import (30073) and
export (30075) active energies are separate, never-negative counters in kWh,
made Wh here.

Cross-checked: the SDM630 Modbus V2 input register table (B+G e-tech edition:
30001 at 00 00 hex ... 30381 at 01 7C) and the SDM opcodes of
volkszaehler/mbmd: voltage 0x0000, current 0x0006, power
0x000C, total power 0x0034, cos phi 0x003E, frequency 0x0046, import 0x0048,
export 0x004A, all read with function 04 as float32.
"""

from __future__ import annotations

from typing import Final

from drivers.identity import IdentityField, identity_map, number_point
from drivers.profile import Point, PointBuilder, RegisterMap
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

SOURCE: Final = "Eastron SDM630 Modbus Protocol V1.5 / SDM120 Modbus Protocol V2.4, input registers"
# "Each request for data must be restricted to 40 parameters or less" (float32 each).
EASTRON_MAX_REGISTERS: Final = 80
# 30001-30076 hold the documented parameters (volts, amps, VA, var, PF, angles, ...)
# but for a few numbers the table skips (e.g. 30045, 30051, 30055). The widely used
# nmakel/sdm_modbus reads its batches straight across those, so the meters answer
# such reads: a whole poll is one request.
EASTRON_MAX_GAP: Final = EASTRON_MAX_REGISTERS


# The tables number the registers from 30001 (input register 1).
_reg: Final = PointBuilder(RegisterType.INPUT, locate=lambda number: number - 30001)


SDM630: Final = RegisterMap(
    name="eastron_sdm630",
    source=SOURCE,
    max_count=EASTRON_MAX_REGISTERS,
    max_gap=EASTRON_MAX_GAP,
    points=(
        _reg("Phase 1 line to neutral volts", 30001, DataType.FLOAT32, "grid.phase_voltage_v[0]"),
        _reg("Phase 2 line to neutral volts", 30003, DataType.FLOAT32, "grid.phase_voltage_v[1]"),
        _reg("Phase 3 line to neutral volts", 30005, DataType.FLOAT32, "grid.phase_voltage_v[2]"),
        _reg("Phase 1 current", 30007, DataType.FLOAT32, "extra.grid_phase_current_l1_a"),
        _reg("Phase 2 current", 30009, DataType.FLOAT32, "extra.grid_phase_current_l2_a"),
        _reg("Phase 3 current", 30011, DataType.FLOAT32, "extra.grid_phase_current_l3_a"),
        _reg("Phase 1 power", 30013, DataType.FLOAT32, "grid.phase_power_w[0]"),
        _reg("Phase 2 power", 30015, DataType.FLOAT32, "grid.phase_power_w[1]"),
        _reg("Phase 3 power", 30017, DataType.FLOAT32, "grid.phase_power_w[2]"),
        _reg("Average line to neutral volts", 30043, DataType.FLOAT32, "grid.voltage_v"),
        _reg("Sum of line currents", 30049, DataType.FLOAT32, "grid.current_a"),
        _reg("Total system power", 30053, DataType.FLOAT32, "grid.power_w"),
        _reg("Total system power factor", 30063, DataType.FLOAT32, "grid.power_factor"),
        _reg("Frequency of supply voltages", 30071, DataType.FLOAT32, "grid.frequency_hz"),
        _reg("Import active energy", 30073, DataType.FLOAT32, "grid.import_energy_wh", 1000.0),
        _reg("Export active energy", 30075, DataType.FLOAT32, "grid.export_energy_wh", 1000.0),
    ),
)

SDM120: Final = RegisterMap(
    name="eastron_sdm120",
    source=SOURCE,
    max_count=EASTRON_MAX_REGISTERS,
    max_gap=EASTRON_MAX_GAP,
    points=(
        _reg("Voltage", 30001, DataType.FLOAT32, "grid.voltage_v"),
        _reg("Current", 30007, DataType.FLOAT32, "grid.current_a"),
        _reg("Active power", 30013, DataType.FLOAT32, "grid.power_w"),
        _reg("Power factor", 30031, DataType.FLOAT32, "grid.power_factor"),
        _reg("Frequency", 30071, DataType.FLOAT32, "grid.frequency_hz"),
        _reg("Import active energy", 30073, DataType.FLOAT32, "grid.import_energy_wh", 1000.0),
        _reg("Export active energy", 30075, DataType.FLOAT32, "grid.export_energy_wh", 1000.0),
    ),
)


# The identity (drivers/identity.py): the meters' serial number, holding register
# FC00, an unsigned 32-bit integer, high word first, read only. The input register
# tables this map cites do not list it; reaper7/SDM_Energy_Meter reads it so from
# the SDM72, SDM120, SDM220, SDM230 and SDM630 (SDM.h: SDM_HOLDING_SERIAL_NUMBER
# 0xFC00, function 03, 4 bytes high byte first). A meter that refuses it has none.
SERIAL_ADDRESS: Final = 0xFC00
IDENTITY_MAP: Final = identity_map(
    "eastron",
    "Eastron SDM holding register FC00 serial number (U32), as reaper7/SDM_Energy_Meter "
    "reads it (SDM.h SDM_HOLDING_SERIAL_NUMBER)",
    (
        number_point(
            IdentityField.SERIAL_NUMBER, RegisterType.HOLDING, SERIAL_ADDRESS, DataType.UINT32
        ),
    ),
    max_count=EASTRON_MAX_REGISTERS,
)


def served(reg_map: RegisterMap, serial: int) -> RegisterMap:
    """``reg_map`` as a simulated meter answers it, its serial number at FC00 too."""
    return RegisterMap(
        name=reg_map.name,
        source=reg_map.source,
        points=(
            Point(
                "Serial number",
                SERIAL_ADDRESS,
                RegisterType.HOLDING,
                DataType.UINT32,
                constant=serial,
            ),
            *reg_map.points,
        ),
        max_count=reg_map.max_count,
        max_gap=reg_map.max_gap,
    )


# Eastron input registers (float32): 30001 phase 1 voltage, 30071 frequency. The
# three-phase SDM630 also has a live phase 2 voltage at 30003; the SDM120 does not.
_VOLTS_L1: Final = Check(RegisterType.INPUT, 0x0000, DataType.FLOAT32, 80.0, 300.0)
_VOLTS_L2: Final = Check(RegisterType.INPUT, 0x0002, DataType.FLOAT32, 80.0, 300.0)
_HERTZ: Final = Check(RegisterType.INPUT, 0x0046, DataType.FLOAT32, 45.0, 65.0)

PROFILES: Final = (
    DeviceProfile(
        name="eastron_sdm630",
        vendor="Eastron",
        models="SDM630 (Modbus V1.5/V2) three-phase meter",
        role=Role.GRID,
        register_map=SDM630,
        source=SOURCE,
        config_name="meter",
        identity=IDENTITY_MAP,
        signature=Signature(
            "Eastron SDM630 three-phase meter (voltages 30001/30003, frequency 30071)",
            (_VOLTS_L1, _VOLTS_L2, _HERTZ),
        ),
    ),
    DeviceProfile(
        name="eastron_sdm120",
        vendor="Eastron",
        models="SDM120 (Modbus V2.4) single-phase meter",
        role=Role.GRID,
        register_map=SDM120,
        source=SOURCE,
        config_name="meter",
        identity=IDENTITY_MAP,
        signature=Signature(
            "Eastron SDM120 single-phase meter (voltage 30001, frequency 30071)",
            (_VOLTS_L1, _HERTZ),
        ),
    ),
)
