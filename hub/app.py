"""The hub's FastAPI application factory.

``create_app(settings)`` wires the doors, the HTTP API and, when the module is
present, the built-in dashboard (``hub.dashboard.router``, GET /). The
``Hub`` runtime (storage, writer, registry, tokens) is created in the lifespan
and kept on ``app.state.hub``; nothing runs at import time.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from hub import api, dashboard_door, device_door
from hub.errors import CatchAll
from hub.limits import ConnectionGate
from hub.runtime import Hub, HubSettings
from hub.sockets import TransportProbe
from hub.storage.base import Storage

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
        async with Hub(settings, storage=storage, gate=gate) as hub:
            app.state.hub = hub
            yield

    # Every TCP connection passes it (hub/guard.py, via hub/server.py's uvicorn config).
    gate = ConnectionGate(settings.limits)

    app = FastAPI(
        title="EMS Switchboard hub",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.gate = gate
    app.add_middleware(TransportProbe)
    app.add_middleware(CatchAll)
    app.include_router(device_door.router)
    app.include_router(dashboard_door.router)
    app.include_router(api.router)
    app.include_router(api.data_router)
    dashboard = _dashboard_router()
    if dashboard is not None:
        app.include_router(dashboard)
    return app
