"""Chint DTSU666 three-phase four-wire energy meter (the grid meter many inverters ship with).

Source: CHINT "DTSU666.001 / DSSU666.001 series three phase electronic energy
meter, User Manual" ZTW0.464.0104 V1 (2023), section "Communication", table
"ModBus protocol address table", cross-checked with the earlier edition
ZTY0.464.1448 (table 11). Read with function 03 (the manual: "ModBus_RTU
protocol read command is 03H"), factory settings 9600 bit/s, n.8.1, address 1.

Electricity data (2000H onwards) are IEEE 754 float32, high word first ("ABCD"),
in the manual's raw units, so every value carries the scale its table row gives:
voltages x0.1 V (a register reading 2301.5 means 230.15 V), currents x0.001 A,
powers x0.1 W / var, power factors x0.001, frequency x0.01 Hz. The energies
(ImpEp 101EH, ExpEp 1028H) are float32 kWh, made Wh here. Values are on the
secondary side: behind current or voltage transformers they are to be multiplied
by the ratios IrAt (0006H) and UrAt (0007H, x0.1), which this map does not do
(a CT-connected meter is read with a generic map carrying the ratio in its scales).

Signs: the combined and per-phase active powers (Pt 2012H, Pa-Pc 2014H-2018H)
are positive for forward (imported) energy as the meter is wired in the
manual's diagram, which is the protocol's convention for ``grid.power_w``
(docs/protocol.md, "Signs").

Where transcriptions disagree: volkszaehler/mbmd and the 2023 manual put the
total import/export energies at 101EH/1028H; some older transcriptions (a data
logger vendor's table, scripts for earlier firmware) read 401EH/4028H. The
vendor's current manual wins: 101EH/1028H. OpenEMS reads the same data with
function 04; the manual documents 03 only, which is what the map and the
simulated meter use.

The meter gives no average phase voltage or total current: ``grid.voltage_v`` is
derived as the mean of the three phase voltages and ``grid.current_a`` as the
sum of the three phase currents (the SDM630's "sum of line currents").
"""

from __future__ import annotations

import statistics
from typing import Final

from drivers.bus import BusType
from drivers.identity import IdentityField, identity_map, number_point
from drivers.profile import PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

SOURCE: Final = (
    "CHINT DTSU666.001/DSSU666.001 User Manual ZTW0.464.0104 V1 (2023), "
    "ModBus protocol address table (2000H electricity data, 101EH/1028H energies)"
)
# The manual states no request length limit; the Modbus maximum is assumed.
DTSU666_MAX_COUNT: Final = 125
# The table documents 2000H-2031H (voltages, currents, powers, power factors)
# and 2044H (frequency); the 18 addresses in between are not documented, so no
# request spans them (a gap of at most 16 stays inside documented blocks).
DTSU666_MAX_GAP: Final = 16

# Raw units of the electricity data block (table column "unit"), as multipliers.
DECIVOLT: Final = 0.1
MILLIAMP: Final = 0.001
DECIWATT: Final = 0.1
PF_UNIT: Final = 0.001
CENTIHERTZ: Final = 0.01
KWH: Final = 1000.0  # kWh registers -> Wh


_reg: Final = PointBuilder(RegisterType.HOLDING)


_PHASE_CURRENTS: Final = tuple(f"grid_phase_current_l{n}_a" for n in (1, 2, 3))


def _totals(sections: Sections) -> None:
    """``grid.voltage_v`` (mean of the phases) and ``grid.current_a`` (sum of the phases)."""
    grid = sections.get("grid", {})
    extra = sections.get("extra", {})
    volts = grid.get("phase_voltage_v")
    if isinstance(volts, list) and len(volts) == 3:
        grid["voltage_v"] = statistics.fmean(volts)
    amps = [extra.get(name) for name in _PHASE_CURRENTS]
    if all(isinstance(a, float) for a in amps):
        grid["current_a"] = sum(a for a in amps if isinstance(a, float))
    if grid:
        sections["grid"] = grid


DTSU666: Final = RegisterMap(
    name="chint_dtsu666",
    source=SOURCE,
    max_count=DTSU666_MAX_COUNT,
    max_gap=DTSU666_MAX_GAP,
    points=(
        # 101EH ImpEp "(current) positive total active energy", 1028H ExpEp negative, kWh.
        _reg("ImpEp", 0x101E, DataType.FLOAT32, "grid.import_energy_wh", KWH),
        _reg("ExpEp", 0x1028, DataType.FLOAT32, "grid.export_energy_wh", KWH),
        # 2006H-200AH Ua, Ub, Uc: phase voltages, x0.1 V.
        _reg("Ua", 0x2006, DataType.FLOAT32, "grid.phase_voltage_v[0]", DECIVOLT),
        _reg("Ub", 0x2008, DataType.FLOAT32, "grid.phase_voltage_v[1]", DECIVOLT),
        _reg("Uc", 0x200A, DataType.FLOAT32, "grid.phase_voltage_v[2]", DECIVOLT),
        # 200CH-2010H Ia, Ib, Ic: phase currents, x0.001 A.
        _reg("Ia", 0x200C, DataType.FLOAT32, "extra.grid_phase_current_l1_a", MILLIAMP),
        _reg("Ib", 0x200E, DataType.FLOAT32, "extra.grid_phase_current_l2_a", MILLIAMP),
        _reg("Ic", 0x2010, DataType.FLOAT32, "extra.grid_phase_current_l3_a", MILLIAMP),
        # 2012H Pt combined active power, 2014H-2018H Pa-Pc, x0.1 W, > 0 forward (import).
        _reg("Pt", 0x2012, DataType.FLOAT32, "grid.power_w", DECIWATT),
        _reg("Pa", 0x2014, DataType.FLOAT32, "grid.phase_power_w[0]", DECIWATT),
        _reg("Pb", 0x2016, DataType.FLOAT32, "grid.phase_power_w[1]", DECIWATT),
        _reg("Pc", 0x2018, DataType.FLOAT32, "grid.phase_power_w[2]", DECIWATT),
        # 201AH Qt combined reactive power, x0.1 var.
        _reg("Qt", 0x201A, DataType.FLOAT32, "extra.grid_reactive_power_var", DECIWATT),
        # 202AH PFt combined power factor, x0.001.
        _reg("PFt", 0x202A, DataType.FLOAT32, "grid.power_factor", PF_UNIT),
        # 2044H Freq, x0.01 Hz.
        _reg("Freq", 0x2044, DataType.FLOAT32, "grid.frequency_hz", CENTIHERTZ),
    ),
    derive=_totals,
)

# What the simulated meter answers besides the polled points: the keyboard
# parameters of the table's first block (signed int16, holding), at factory values.
REV_ADDRESS: Final = 0x0000  # REV. software version
NET_ADDRESS: Final = 0x0003  # net: 0 three phase four wire, 1 three phase three wire
IRAT_ADDRESS: Final = 0x0006  # IrAt current transformer rate, 1..9999
URAT_ADDRESS: Final = 0x0007  # UrAt voltage transformer rate x0.1 (10 = ratio 1.0)
PROTOCOL_ADDRESS: Final = 0x002C  # 1 DL/T645, 2 n.2, 3 n.1, 4 E.1, 5 o.1
BAUD_ADDRESS: Final = 0x002D  # 0 1200, 1 2400, 2 4800, 3 9600, 4 19200
ADDR_ADDRESS: Final = 0x002E  # Addr communication address 1..247
PROTOCOL_N81: Final = 3
BAUD_9600: Final = 3

# The identity (drivers/identity.py): REV (0000H), the meter's software version, a
# number shown as the meter shows it (204). The table gives no serial number and no
# model register (the model is the table itself).
IDENTITY_MAP: Final = identity_map(
    "chint_dtsu666",
    f"{SOURCE}: 0000H REV. software version",
    (
        number_point(
            IdentityField.FIRMWARE_VERSION, RegisterType.HOLDING, REV_ADDRESS, DataType.INT16
        ),
    ),
)

# Signature: the phase-A voltage in its raw x0.1 V unit and the frequency in
# x0.01 Hz, both float32 holding registers only this table places there; the
# manual's operating range is 0.7-1.2 Un of 3x230/400 V, and 45-65 Hz.
_SIGNATURE: Final = Signature(
    "Chint DTSU666 three-phase meter (Ua 2006H, Freq 2044H, float32 holding)",
    (
        Check(RegisterType.HOLDING, 0x2006, DataType.FLOAT32, 80.0, 300.0, scale=DECIVOLT),
        Check(RegisterType.HOLDING, 0x2044, DataType.FLOAT32, 45.0, 65.0, scale=CENTIHERTZ),
    ),
)

PROFILES: Final = (
    DeviceProfile(
        name="chint_dtsu666",
        vendor="Chint",
        models="DTSU666 and DTSU666-CT three-phase four-wire meters (RS485)",
        role=Role.GRID,
        register_map=DTSU666,
        source=SOURCE,
        transports=frozenset({BusType.RTU}),
        default_unit=1,
        signature=_SIGNATURE,
        config_name="meter",
        identity=IDENTITY_MAP,
        notes=(
            "RS485 only, factory settings 9600 bit/s 8N1, address 1 (Addr 002EH).",
            "Values are on the secondary side: behind current transformers multiply "
            "by the CT ratio IrAt (0006H), or set it in the meter.",
            "Energies are read at 101EH/1028H (current manual); older firmware "
            "documented at 401EH/4028H can be read with a generic map.",
            "The Huawei DTSU666-H variant uses Huawei's own register table, not this one.",
        ),
    ),
)
