"""The hub: EMS Switchboard's real-time switchboard (FastAPI/uvicorn).

Devices publish through the device door, dashboards subscribe through the
dashboard door; every reading forks into live fan-out (hot path) and batched,
acked storage (cold path). Imports only ``telemetry`` of ours.

Where things are:

- ``server`` runs uvicorn and orders the shutdown; ``app`` builds the FastAPI
  application; ``runtime.Hub`` holds the running state (on ``app.state.hub``),
  private: the routes get only the narrow interfaces of ``ports`` (and
  ``viewer_access.ViewerPolicy``);
- ``device_door`` and ``dashboard_door`` are the two WebSocket routes; ``api``
  the HTTP routes (``query`` parses their parameters); ``metrics`` owns every
  counter and collects them (``exposition`` renders Prometheus text);
- ``connections`` is the registry (ghost protocol, hot-path fan-out);
  ``fanout`` a dashboard's bounded queue and sender; ``device_replies`` a
  device's acks and errors; ``gatekeeper`` counts and logs bad frames;
  ``auth`` tokens; ``sockets`` the thin layer over Starlette's WebSocket;
- ``storage`` and ``batch_writer``: the cold path's database side;
- ``cli``: ``ems hub serve`` and ``ems hub token ...``.
"""
