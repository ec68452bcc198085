"""The hub: EMS Switchboard's real-time switchboard (FastAPI/uvicorn).

Devices publish through the device door, dashboards subscribe through the
dashboard door; every reading forks into live fan-out (hot path) and batched,
acked storage (cold path). Imports only ``telemetry`` of ours.
"""
