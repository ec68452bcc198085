"""Several hubs, one switchboard: hubs share devices and dashboards through Redis.

``ems hub serve --cluster redis://...`` (docs/architecture.md, "Several hubs";
docs/configuration.md, "Hub cluster"). Pure logic (wire.py, lease.py,
mirror.py, routing.py) is apart from the Redis I/O (link.py, scripts.py) and
the process supervisor of ``--workers`` (workers.py). A single hub imports none
of this, and needs no Redis.
"""
