"""Wire protocol v1 of EMS Switchboard: the models every side shares.

This package imports nothing else of ours (docs/architecture.md): the hub, the
edge agent and the simulators all depend on it, never the other way round.
"""

from telemetry.acks import range_contains, seq_ranges
from telemetry.device_id import is_valid_device_id
from telemetry.frames import (
    MAX_BATCH_ITEMS,
    MAX_FRAME_BYTES,
    AckFrame,
    CloseCode,
    ErrorFrame,
    FrameProblem,
    ParsedFrame,
    Rejected,
    StatusFrame,
    batch_frame,
    dashboard_reading,
    describe_validation_error,
    parse_device_frame,
)
from telemetry.reading import (
    NUMERIC_FIELDS,
    SECTION_MODELS,
    Battery,
    Grid,
    Inverter,
    Reading,
    Solar,
    format_ts,
)

__all__ = [
    "MAX_BATCH_ITEMS",
    "MAX_FRAME_BYTES",
    "NUMERIC_FIELDS",
    "SECTION_MODELS",
    "AckFrame",
    "Battery",
    "CloseCode",
    "ErrorFrame",
    "FrameProblem",
    "Grid",
    "Inverter",
    "ParsedFrame",
    "Reading",
    "Rejected",
    "Solar",
    "StatusFrame",
    "batch_frame",
    "dashboard_reading",
    "describe_validation_error",
    "format_ts",
    "is_valid_device_id",
    "parse_device_frame",
    "range_contains",
    "seq_ranges",
]
