"""Transports: one client and one lock per bus, chosen from the bus config."""

from __future__ import annotations

from drivers.bus import Backend, BusConfig
from drivers.transports.base import Request, Transport


def open_transport(config: BusConfig) -> Transport:
    """The transport for ``config`` (enter it with ``async with``)."""
    if config.backend is Backend.MINIMALMODBUS:
        from drivers.transports.minimalmodbus_backend import MinimalmodbusTransport

        return MinimalmodbusTransport(config)
    from drivers.transports.pymodbus_backend import PymodbusTransport

    return PymodbusTransport(config)


__all__ = ["Request", "Transport", "open_transport"]
