"""Plain helpers the tests share (no fixtures: those stay in the conftest.py files).

- ``ports``: a free loopback port (nothing listens there).
- ``polling``: waiting for another task's or process's state, with a generous bound.
- ``edge``: readings and a running uplink for the edge tests.
- ``modbus``: a bus to a simulated device, register images and words for the family tests.
- ``hub``: a real hub in this process's event loop and its wire helpers.
- ``redis``: a private ``redis-server`` a test can stop and start.
- ``ansible``: the Debian root, the playbook runs and the files they leave.
"""
