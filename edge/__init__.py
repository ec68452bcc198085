"""The edge agent: polls Modbus devices, buffers readings in SQLite, streams them to the hub."""
