"""Modbus transports and device profiles (register maps from the vendors' documents).

What the edge agent uses::

    from drivers import BusConfig, BusType, Device, open_transport, scan

    bus = BusConfig("rs485", BusType.RTU, device="/dev/ttyUSB0", baudrate=9600)
    async with open_transport(bus) as transport:          # one client + one lock per bus
        meter = Device(transport, unit=2, profile="eastron_sdm630")
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
from drivers.profiles import PROFILES, DeviceProfile, fixed_map, get_profile, profile_names
from drivers.transports import Transport, open_transport

__all__ = [
    "PROFILES",
    "Backend",
    "BadFrame",
    "BusConfig",
    "BusType",
    "Device",
    "DeviceProfile",
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
    "Transport",
    "WrongUnit",
    "fixed_map",
    "get_profile",
    "open_transport",
    "profile_names",
    "scan",
]
