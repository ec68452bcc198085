"""Modbus transports and device profiles (register maps from the vendors' documents)."""
