"""JK-PB series inverter BMS (JK-PB2A16S15P/20P...) over its RS485 Modbus-RTU port.

Source: JiKong (JK) "BMS RS485 Modbus" general protocol V1.1 (2023; V1.0 before
it), as published beside syssi/esphome-jk-bms (docs/pb2a16s20p/, Chinese with
English field names). Function 03 reads, 0x10 writes; 115200 8N1; unit id =
the BMS's DIP-switch address 1-15 (0 makes it the bus master for a parallel
stack, and it then answers nobody). Four tables, each an "address field" plus
an "offset" in BYTES: 0x1000 settings (RW), 0x1200 running data (R), 0x1400
device information, 0x1600 commands. A value lives at "field + offset": pack
voltage at 0x1200 + 0x90 = 0x1290, cell 1 at 0x1200, cell 2 at 0x1202.

That byte addressing is the family's quirk. V1.1 gives byte offsets and
lengths but does not say how a read's quantity counts; the ESPHome
configurations that read a PB this way (syssi's esp32-jk-pb-modbus-example,
bearpawmaxim's jkbms-modbus) read the UINT32 pack voltage as 0x1290 x 2 and
the power after it as 0x1294 x 2, and merge neighbours into one read whose
answer holds the values back to back, without gaps. So a read of N
registers at "field + offset" answers N ordinary 16-bit words holding the
bytes from that offset on: the word after 0x1290 is 0x1292 on the wire.
(Taken from those configurations; not checked on a device here.)

The map therefore keeps register (word) addresses, ``field + offset / 2``
(pack voltage: 0x1248), and declares the tables byte-addressed
(``byte_tables``); the driver sends each read to ``field + offset``. Values
are big-endian words, 32-bit values high word first (as read by those configs).

Running data (V1.1, field 0x1200), in the document's byte offsets:

| offset | type | content |
| --- | --- | --- |
| 0x00-0x3E | UINT16 | cell voltages 0-31, mV (a PB pack has 8-16 cells; 16 read here) |
| 0x44 / 0x46 | UINT16 | average cell voltage / largest cell difference, mV |
| 0x8A | INT16 | MOSFET (power board) temperature, 0.1 degC |
| 0x90 | UINT32 | pack voltage, mV |
| 0x94 | UINT32 | pack power, mW (a size: its direction is the current's) |
| 0x98 | INT32 | pack current, mA, > 0 charging |
| 0x9C / 0x9E, 0xF8 / 0xFA | INT16 | battery temperatures 1-4, 0.1 degC |
| 0xA0 | UINT32 | alarm bits (0 wire resistance ... 15 discharge over-temperature, 16-21) |
| 0xA4 | INT16 | balancing current, mA |
| 0xA6 / 0xA7 | UINT8 | balancing state / SOC % (one word: state high byte, SOC low) |
| 0xA8 / 0xAC | INT32 / UINT32 | remaining / full-charge capacity, mAh |
| 0xB0 / 0xB4 | UINT32 | cycle count / cycled capacity, mAh |
| 0xB8 / 0xB9 | UINT8 | SOH % / precharge (SOH the high byte) |
| 0xC0 / 0xC1 | UINT8 | charge / discharge MOSFET on (1) |

Signs: the BMS counts the current > 0 while charging; the protocol wants
discharge positive (docs/protocol.md, "Signs"): the current's scale is
negative, and the power takes the current's direction (``derive``).

Limits: nothing in V1.1 bounds a read below Modbus's 125 registers; its error
codes are 01 (function), 02 (address), 03 (data value). A full poll is two
reads: 0x1200 x 125 (the cells to temperature 3, the documented wire
resistances 0x4A-0x88 bridged) and 0x12FA x 1 (temperature 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from drivers.bus import BusType
from drivers.identity import IdentityField, identity_map, text_point
from drivers.profile import Point, PointBuilder, RegisterMap, Sections
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

SOURCE: Final = (
    "JK BMS RS485 Modbus protocol V1.1 (JK-PB series), running data from 0x1200, "
    "settings 0x1000, device information 0x1400 (byte offsets)"
)
SETTINGS: Final = 0x1000
RUNNING: Final = 0x1200
INFO: Final = 0x1400
BYTE_TABLES: Final = (SETTINGS, RUNNING, INFO)
CELLS: Final = 16
# The four battery temperature sensors: offsets 0x9C, 0x9E, 0xF8, 0xFA.
TEMPERATURE_OFFSETS: Final = (0x9C, 0x9E, 0xF8, 0xFA)
# The pack power's size (0x94), given its direction by ``derive``.
POWER_SIZE: Final = "jk_power_size_w"
# |I| below this is "idle": 10 mA steps plus sensor offset.
IDLE_CURRENT_A: Final = 0.05

H = RegisterType.HOLDING
U16, S16, U32, S32 = DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32


def register(field: int, offset: int) -> int:
    """The word address of "field + offset" (a byte offset, even for every value read)."""
    if offset % 2:
        raise ValueError(f"offset {offset:#x} is not on a word")
    return field + offset // 2


# Addresses are byte offsets into the running-data field (``register``).
_reg: Final = PointBuilder(H, locate=lambda offset: register(RUNNING, offset))


def _number(values: Mapping[str, object], name: str) -> float | None:
    value = values.get(name)
    return float(value) if isinstance(value, float) else None


def _derive(sections: Sections) -> None:
    """The power's direction, the pack temperature and the battery's state."""
    battery = sections.get("battery", {})
    extra = sections.get("extra", {})
    size = extra.pop(POWER_SIZE, None)
    current = _number(battery, "current_a")
    if isinstance(size, float) and current is not None:
        battery["power_w"] = -size if current < 0 else size
    temperatures = [
        t for n in range(1, 5) if (t := _number(extra, f"bms_cell_temperature_{n}_c")) is not None
    ]
    if temperatures:
        battery["temperature_c"] = round(sum(temperatures) / len(temperatures), 2)
    cells = [v for n in range(1, CELLS + 1) if (v := _number(extra, f"bms_cell_voltage_{n:02d}_v"))]
    if cells:
        battery["cell_voltage_min_v"] = min(cells)
        battery["cell_voltage_max_v"] = max(cells)
    if current is not None:
        if current > IDLE_CURRENT_A:
            battery["state"] = "discharging"
        elif current < -IDLE_CURRENT_A:
            battery["state"] = "charging"
        else:
            battery["state"] = "idle"


_RUNNING_POINTS: Final = (
    *(
        _reg(f"Cell {n + 1} voltage", 2 * n, U16, f"extra.bms_cell_voltage_{n + 1:02d}_v", 0.001)
        for n in range(CELLS)
    ),
    _reg("Average cell voltage", 0x44, U16, "extra.bms_cell_voltage_avg_v", 0.001),
    _reg("Largest cell difference", 0x46, U16, "extra.bms_cell_voltage_delta_v", 0.001),
    _reg("MOSFET temperature", 0x8A, S16, "extra.bms_mosfet_temperature_c", 0.1),
    _reg("Pack voltage", 0x90, U32, "battery.voltage_v", 0.001),
    _reg("Pack power", 0x94, U32, f"extra.{POWER_SIZE}", 0.001),
    # > 0 charging on the BMS; the protocol counts discharge positive.
    _reg("Pack current", 0x98, S32, "battery.current_a", -0.001),
    *(
        _reg(f"Temperature {n + 1}", offset, S16, f"extra.bms_cell_temperature_{n + 1}_c", 0.1)
        for n, offset in enumerate(TEMPERATURE_OFFSETS)
    ),
    _reg("Alarms", 0xA0, U32, "extra.bms_alarm_flags", 1.0),
    _reg("Balancing current", 0xA4, S16, "extra.bms_balance_current_a", 0.001),
    # 0xA6 balancing state (high byte), 0xA7 SOC (low byte).
    _reg("SOC", 0xA6, U16, "battery.soc_pct", mask=0xFF),
    _reg("Remaining capacity", 0xA8, S32, "extra.bms_remaining_capacity_ah", 0.001),
    _reg("Full charge capacity", 0xAC, U32, "extra.bms_full_capacity_ah", 0.001),
    _reg("Cycle count", 0xB0, U32, "extra.bms_cycle_count", 1.0),
    _reg("Cycled capacity", 0xB4, U32, "extra.bms_cycled_capacity_ah", 0.001),
    # 0xB8 SOH (high byte), 0xB9 precharge (low byte).
    _reg("SOH", 0xB8, U16, "battery.soh_pct", shift=8, mask=0xFF),
)

JK_PB: Final = RegisterMap(
    name="jk_pb",
    source=SOURCE,
    points=_RUNNING_POINTS,
    derive=_derive,
    byte_tables=BYTE_TABLES,
    # Bridging the wire resistances (0x4A-0x88, documented and readable) saves two reads.
    max_gap=40,
)

# Registers the simulated BMS answers besides the poll (constants of one pack).
# Settings 0x1000 + 0x6C: cell count (UINT32); device information 0x1400 + 0x00:
# "ManufacturerDeviceID" (16 ASCII bytes), + 0x10 hardware and + 0x18 software
# version (8 each); running data 0xC0 / 0xC1: charge and discharge MOSFETs on.
CELL_COUNT_OFFSET: Final = 0x6C
MOSFETS_ON: Final = 0x0101
_SERVED_ONLY: Final = (
    Point("Cell count", register(SETTINGS, CELL_COUNT_OFFSET), H, U32, constant=CELLS),
    Point(
        "Manufacturer device id",
        register(INFO, 0x00),
        H,
        DataType.STRING,
        length=8,
        constant="JK_PB2A16S20P",
    ),
    Point("Hardware version", register(INFO, 0x10), H, DataType.STRING, length=4, constant="19A"),
    Point("Software version", register(INFO, 0x18), H, DataType.STRING, length=4, constant="19.05"),
    Point("MOSFETs", register(RUNNING, 0xC0), H, U16, constant=MOSFETS_ON),
)

# Read once per connection (drivers/identity.py): the device information block's
# "ManufacturerDeviceID" (0x1400 + 0x00, 16 ASCII bytes: the model, "JK_PB2A16S20P")
# and software version (0x1400 + 0x18, 8 bytes). No serial number is read: the
# fields above are the ones of the block this map cites.
IDENTITY_MAP: Final = identity_map(
    "jk_pb",
    f"{SOURCE}: 0x1400 + 0x00 ManufacturerDeviceID, + 0x18 software version",
    (
        text_point(IdentityField.MODEL, H, register(INFO, 0x00), 8),
        text_point(IdentityField.FIRMWARE_VERSION, H, register(INFO, 0x18), 4),
    ),
    byte_tables=BYTE_TABLES,
)

JK_PB_SERVED: Final = RegisterMap(
    name="jk_pb",
    source=SOURCE,
    points=_SERVED_ONLY + _RUNNING_POINTS,
    derive=_derive,
    byte_tables=BYTE_TABLES,
)


PROFILES: Final = (
    DeviceProfile(
        name="jk_pb",
        vendor="JK (JiKong)",
        models="JK-PB series inverter BMS (PB2A16S15P, PB2A16S20P...), RS485 Modbus V1.0/V1.1",
        role=Role.BATTERY,
        register_map=JK_PB,
        source=SOURCE,
        transports=frozenset({BusType.RTU}),
        config_name="bms",
        identity=IDENTITY_MAP,
        # Checks read at the wire's byte addresses: the cell count setting
        # (0x1000 + 0x6C, UINT32), the pack voltage (0x1200 + 0x90, mV) and cell 1 (mV).
        signature=Signature(
            "JK-PB BMS (cell count at 0x106C, pack voltage at 0x1290)",
            (
                Check(H, SETTINGS + CELL_COUNT_OFFSET, U32, 4, 32),
                Check(H, RUNNING + 0x90, U32, 8.0, 100.0, scale=0.001),
                Check(H, RUNNING, U16, 1.5, 4.5, scale=0.001),
            ),
        ),
        notes=(
            "RS485 port 1 (the monitoring port), 115200 8N1; unit id = DIP address 1-15 "
            "(address 0 is the parallel stack's master, which answers no reads).",
            "Addresses count bytes ('0x1200 + offset'); the profile sends each read there.",
            "Current and power are > 0 discharging in the reading (the BMS counts charge "
            "positive).",
        ),
    ),
)
