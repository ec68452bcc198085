"""Running the hub under uvicorn, and stopping it cleanly on SIGTERM.

uvicorn settings: uvloop and httptools;
the sans-I/O ``websockets`` protocol (subclassed in hub/guard.py), named
explicitly so an upgrade of uvicorn's "auto" choice cannot change the flow
control hub/fanout.py relies on; per-message deflate off (it costs memory per
socket); ``ws_max_size`` of 1 MiB, so the ``websockets`` parser fails a larger
frame with 1009
(docs/protocol.md, "Close codes": a frame larger than 1 MiB closes with 1009);
pings every 20 s, and a peer that does not answer within 20 s is closed (a
dashboard never has to speak, but must answer pings).

Limits (docs/security.md, "Limits"): every TCP connection goes through the
app's :class:`~hub.limits.ConnectionGate` (``app.state.gate``), applied by
uvicorn's HTTP protocol subclassed in hub/guard.py; an idle keep-alive
connection is closed after ``handshake_timeout_s`` too (uvicorn's own
``timeout_keep_alive``). TLS: ``tls`` names a certificate chain and key in PEM;
uvicorn serves HTTPS and ``wss://`` with them. Behind a reverse proxy: the
client address and scheme come from ``X-Forwarded-For``/``-Proto`` only when the
peer is one of ``trusted_proxies`` (hub/proxies.py).

Shutdown. uvicorn's own shutdown closes every open WebSocket with 1012
("service restart") and, after a signal, re-raises that signal once it is done,
so the process would die of SIGTERM instead of exiting 0. ``HubServer``
changes exactly those two things: before uvicorn's shutdown it stops
accepting, lets the writer flush and closes our sockets with 1001
(``Hub.begin_shutdown``); and it does not re-raise the signal.

Logging (hub/log_safety.py): every record of the process is redacted (no
token, cookie or password in any line, uvicorn's and websockets' included), and
uvicorn's own lines for a refused handshake give way to the hub's rate-limited
one (hub/refusals.py). uvicorn's access log stays off.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import signal
import socket
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from hub.gatekeeper import LogLimiter
from hub.guard import QuietWebSocketProtocol, guarded_protocol
from hub.limits import ConnectionGate
from hub.log_safety import install_uvicorn_refusal_filter, remove_uvicorn_refusal_filter
from hub.proxies import DEFAULT_TRUSTED_PROXIES
from telemetry import MAX_FRAME_BYTES
from telemetry.redaction import install_redaction

logger = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The collector's thresholds while serving (docs/benchmarks.md, "Hub"). With
# CPython's defaults (700, 10, 10) a young collection runs every few hundred
# readings, so every queued reading (about 20 tracked objects: the pydantic
# models, their dicts and field sets) survives two of them and lands in the
# oldest generation; full collections then walk hundreds of thousands of
# objects: 14 of them took 3.7 s of a 40 s run with 1000 devices, up to 0.5 s
# each, stalling every live reading. At 50,000 allocations a reading's models
# are usually freed by reference counting (once fanned out and turned into a
# storage row, hub/batch_writer.py) before a young collection sees them, young
# collections stay at a few ms, and full ones become rare. Cyclic garbage is
# still collected, just in larger, rarer steps.
GC_THRESHOLDS = (50_000, 20, 100)

PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The hub's own TLS: a PEM certificate chain and its PEM private key."""

    cert: Path
    key: Path


def tune_gc() -> None:
    """The hub's collector settings, once everything loaded at start-up is alive.

    Latency: a full (generation 2) collection walks every object alive, and
    the libraries loaded at start-up (FastAPI, pydantic schemas, asyncpg) are
    hundreds of thousands of them; a collection then stalls the loop, and so
    every live reading, for 100+ ms. Everything alive now lives as long as the
    process: move it out of the collector's sight (gc.freeze), then raise the
    thresholds (:data:`GC_THRESHOLDS`).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def uvicorn_config(
    app: FastAPI,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    tls: TlsFiles | None = None,
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES,
) -> uvicorn.Config:
    gate: ConnectionGate | None = getattr(app.state, "gate", None)
    keep_alive_s = 5
    if gate is not None and gate.limits.handshake_timeout_s > 0:
        keep_alive_s = max(1, math.ceil(gate.limits.handshake_timeout_s))
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=guarded_protocol(gate) if gate is not None else "httptools",
        ws=QuietWebSocketProtocol,
        ws_max_size=MAX_FRAME_BYTES,
        ws_per_message_deflate=False,
        ws_ping_interval=PING_INTERVAL_S,
        ws_ping_timeout=PING_TIMEOUT_S,
        lifespan="on",
        log_config=None,  # the `ems` command configured logging already
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=keep_alive_s,
        timeout_graceful_shutdown=5,
        ssl_certfile=tls.cert if tls is not None else None,
        ssl_keyfile=tls.key if tls is not None else None,
        # hub/proxies.py: the forwarded client address only from these peers, and
        # always this list, never uvicorn's own default from $FORWARDED_ALLOW_IPS.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies),
    )


class HubServer(uvicorn.Server):
    """uvicorn's server with the hub's shutdown order (see module docstring)."""

    def __init__(
        self, config: uvicorn.Config, app: FastAPI, *, handle_signals: bool = True
    ) -> None:
        install_redaction()
        super().__init__(config)
        self.app = app
        self._handle_signals = handle_signals
        # Before the hub exists (start-up), uvicorn's complaints share this budget.
        self._startup_refusal_log = LogLimiter(burst=20, window_s=60.0)
        self._stop_signal: signal.Signals | None = None

    def _refusal_log(self) -> LogLimiter:
        hub = getattr(self.app.state, "hub", None)
        return hub.refusal_log if hub is not None else self._startup_refusal_log

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self._handle_signals:
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        # Unlike uvicorn, no re-raise: a clean stop on SIGTERM exits 0.

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        refusal_filter = install_uvicorn_refusal_filter(self._refusal_log)
        try:
            await super().serve(sockets)
        finally:
            remove_uvicorn_refusal_filter(refusal_filter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        tune_gc()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # No logging here: under `--workers` a worker gets SIGTERM from its supervisor
        # and from systemd at once, and a handler that logs while the first one is
        # still inside a log call re-enters the stream ("reentrant call", a
        # "--- Logging error ---" traceback in the journal). shutdown() reports it.
        if self._stop_signal is None:
            self._stop_signal = signal.Signals(sig)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._stop_signal is not None:
            logger.info("received %s: stopping", self._stop_signal.name)
        for server in getattr(self, "servers", []):
            server.close()  # stop accepting before anything else
        hub = getattr(self.app.state, "hub", None)
        if hub is not None:
            await hub.begin_shutdown()
        await super().shutdown(sockets)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        for server in getattr(self, "servers", []):
            for sock in server.sockets or ():
                return int(sock.getsockname()[1])
        raise RuntimeError("the server is not listening yet")
