"""The ``ems`` command line: one entry point for hub, edge, simulator and demo."""
