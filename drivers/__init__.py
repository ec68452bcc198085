"""Modbus transports and device profiles (register maps from the vendors' documents).

What the edge agent uses::

    from drivers import BusConfig, BusType, Device, ProfileName, open_transport, scan

    bus = BusConfig("rs485", BusType.RTU, device="/dev/ttyUSB0", baudrate=9600)
    async with open_transport(bus) as transport:          # one client + one lock per bus
        meter = Device(transport, unit=2, profile=ProfileName.EASTRON_SDM630)
        reading = await meter.read()                        # DeviceReading, or a DriverError
        reading.section("grid")["power_w"]

Modules: ``registers`` (data types, word orders, markers), ``planner`` (read
plans), ``profile`` (register maps, decode/encode), ``profiles`` (the vendors'
maps and the generic TOML one), ``bus`` (bus settings), ``transports`` (pymodbus
and minimalmodbus), ``device`` (read and scan), ``errors`` (the exception tree).
Importing this package does not import pymodbus or minimalmodbus; opening a
transport does.
"""

from drivers.bus import Backend, BusConfig, BusType, Parity
from drivers.device import Device, DeviceReading, scan
from drivers.errors import (
    BadFrame,
    DiscoveryError,
    DriverError,
    ExceptionCode,
    ExceptionResponse,
    ModbusError,
    NoResponse,
    NotConnected,
    ProfileError,
    WrongUnit,
)
from drivers.profiles import ProfileName, fixed_map, profile_name
from drivers.transports import Transport, open_transport

__all__ = [
    "Backend",
    "BadFrame",
    "BusConfig",
    "BusType",
    "Device",
    "DeviceReading",
    "DiscoveryError",
    "DriverError",
    "ExceptionCode",
    "ExceptionResponse",
    "ModbusError",
    "NoResponse",
    "NotConnected",
    "Parity",
    "ProfileError",
    "ProfileName",
    "Transport",
    "WrongUnit",
    "fixed_map",
    "open_transport",
    "profile_name",
    "scan",
]
