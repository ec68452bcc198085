"""The hub's FastAPI application factory.

``create_app(settings)`` wires the doors, the HTTP API and, when the module is
present, the built-in dashboard (``hub.dashboard.router``, GET /). The
``Hub`` runtime (storage, writer, registry, tokens) is created in the lifespan
and kept on ``app.state.hub``; the routes get only its narrow interfaces, each on
``app.state`` (hub/ports.py, ``ViewerPolicy`` in hub/viewer_access.py, the
metrics in hub/metrics.py). Nothing runs at import time.

Around every route: security headers (hub/web_security.py) and, only for the
origins given with ``--allow-origin``, CORS answers so their pages may call the
API. The OpenAPI document asks for what the API asks for (hub/viewer_access.py);
there are no interactive docs pages.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from hub import api, dashboard_door, device_door, energy_api, viewer_access
from hub.errors import CatchAll
from hub.limits import ConnectionGate
from hub.metrics import HubMetrics
from hub.runtime import Hub, HubSettings
from hub.sockets import TransportProbe
from hub.storage.base import Storage
from hub.web_security import SecurityHeaders
from telemetry.version import installed_version

logger = logging.getLogger(__name__)


def _dashboard_router() -> APIRouter | None:
    """The built-in dashboard's routes, when that part of the hub is installed."""
    try:
        module = importlib.import_module("hub.dashboard")
    except ModuleNotFoundError as err:
        if err.name != "hub.dashboard":
            raise
        return None
    router = getattr(module, "router", None)
    return router if isinstance(router, APIRouter) else None


def create_app(settings: HubSettings, *, storage: Storage | None = None) -> FastAPI:
    """A hub application; ``storage`` overrides the one ``settings`` names (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Hub(settings, storage=storage, gate=gate, metrics=metrics) as hub:
            app.state.hub = hub  # hub/server.py: its shutdown order and refusal log budget
            # Each route reads only its own narrow interface (hub/ports.py).
            app.state.device_port = hub.device_port
            app.state.dashboard_port = hub.dashboard_port
            app.state.reader = hub.reader
            app.state.viewer = hub.viewer_policy
            app.state.metrics = hub.metrics
            yield

    # Every TCP connection passes it (hub/guard.py, via hub/server.py's uvicorn config);
    # made before the hub, with the counters the hub's metrics own (hub/metrics.py).
    metrics = HubMetrics()
    gate = ConnectionGate(settings.limits, metrics.gate)

    app = FastAPI(
        title="EMS Switchboard hub",
        version=installed_version(),  # FastAPI's default ("0.1.0") would go stale
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the viewer check
    )
    app.state.gate = gate
    app.add_middleware(TransportProbe)
    app.add_middleware(CatchAll)
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(SecurityHeaders)  # outermost: CORS preflight answers get them too
    app.include_router(device_door.router)
    app.include_router(dashboard_door.router)
    app.include_router(api.router)
    app.include_router(api.data_router)
    app.include_router(energy_api.router)
    app.include_router(viewer_access.router)

    @app.get(
        "/api/openapi.json",
        include_in_schema=False,
        dependencies=[Depends(viewer_access.require_viewer)],
    )
    async def openapi_document() -> dict[str, Any]:
        return app.openapi()

    dashboard = _dashboard_router()
    if dashboard is not None:
        app.include_router(dashboard)
    return app
