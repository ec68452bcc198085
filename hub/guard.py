"""uvicorn's protocols with the hub's rules: the connection gate, and quiet WebSockets.

**HTTP** (:class:`GuardedHttpToolsProtocol`): the connection gate (hub/limits.py).

uvicorn makes one protocol object per accepted TCP connection
(``config.http``, here a subclass of its httptools protocol). This subclass
reports each connection's life to a :class:`~hub.limits.ConnectionGate`:

- made: admitted (idle until its request arrives), or answered ``503 Service
  Unavailable`` with ``Retry-After`` and closed: a clean refusal any HTTP or
  WebSocket client understands, written before anything was read;
- request headers complete: busy (no timer while the hub answers);
- answer sent, kept alive: idle again, with a new timer;
- upgraded to a WebSocket, or closed: forgotten (the doors and the dashboard cap
  take over).

A refused connection is half-closed and drained for up to ``LINGER_S`` so its
peer reads the 503; only ``max_lingering`` at a time, beyond that (a flood) it
is closed at once.

A connection idle for ``handshake_timeout_s`` (one that never sends a complete
request, or never sends the next one) is closed by a timer; a closed connection
is aborted rather than closed, so a peer that stopped reading cannot keep its
descriptor.

uvicorn 0.55's ``HttpToolsProtocol`` is the base; the hooks used
(``connection_made``, ``on_headers_complete``, ``on_response_complete``,
``handle_websocket_upgrade``, ``connection_lost``) are its own protocol and
parser callbacks (tests/hub/test_limits.py holds them to it).

**WebSocket** (:class:`QuietWebSocketProtocol`, uvicorn 0.55's sans-I/O
``websockets`` protocol) with three changes, found by tests/hub/test_fuzz_sockets.py:

- text that is not UTF-8 is closed with 1007 as before, but logged as one line
  at INFO, not as an ERROR with a traceback: it is the peer's mistake;
- once the protocol layer itself closed a socket (1002, 1007, 1009), a later
  ``send`` from the app raises ``ClientDisconnected`` (the hub's "peer gone",
  hub/sockets.py), not a ``RuntimeError`` the app would take for a bug;
- the ``websockets`` layer logs to ``hub.wire``, held at INFO: at DEBUG it
  would write every handshake header (a device's ``Authorization`` among them)
  and a traceback for every malformed handshake.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from hub.limits import Closure, ConnectionGate, Refusal

logger = logging.getLogger(__name__)

# The websockets layer's own logger (see the module docstring): never below INFO.
WIRE_LOGGER: Final = logging.getLogger("hub.wire")
WIRE_LOGGER.setLevel(logging.INFO)

RETRY_AFTER_S: Final = 5
# A refused connection is half-closed and drained this long before it is aborted:
# closing a socket with unread input sends a reset, which could destroy the 503
# before the client reads it.
LINGER_S: Final = 1.0

_REFUSED: Final = {
    refusal: (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"retry-after: " + str(RETRY_AFTER_S).encode() + b"\r\n"
        b"connection: close\r\n"
        b"content-length: " + str(len(text)).encode() + b"\r\n\r\n" + text
    )
    for refusal, text in {
        Refusal.PENDING_FULL: b"too many connections: try again later\n",
        Refusal.ADDRESS_FULL: b"too many connections from this address: try again later\n",
    }.items()
}


class _WriteAfterCloseIgnored:
    """A transport whose writes after it closed are dropped, as asyncio's own are.

    uvloop's transports raise ``RuntimeError`` instead, and a response still
    being written when its peer vanished (or when uvicorn closed the connection
    on a pipelined request it could not parse) would end as an "internal error".
    Everything else goes to the real transport.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._transport.is_closing():
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        if not self._transport.is_closing():
            self._transport.writelines(lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_protocol(gate: ConnectionGate) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for this gate."""

    class Guarded(GuardedHttpToolsProtocol):
        pass

    Guarded.gate = gate
    return Guarded


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; use :func:`guarded_protocol` to bind a gate."""

    gate: ConnectionGate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._lingering = False

    # -- the gate's view of this connection (hub.limits.Droppable) -----------------

    def drop(self, closure: Closure) -> None:
        self._cancel_timer()
        if closure is Closure.HANDSHAKE_TIMEOUT:
            logger.debug("closed a connection that sent no request in time")
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    # -- uvicorn's hooks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transport = cast(asyncio.Transport, _WriteAfterCloseIgnored(transport))
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        now = self.loop.time()
        refusal = self.gate.admit(self, address, now)
        if (report := self.gate.cap_report(now)) is not None:
            logger.warning(report)
        if refusal is not None:
            self._refused = True
            transport.write(_REFUSED[refusal])
            if self.gate.lingering >= self.gate.limits.max_lingering:
                # A flood: the descriptors matter more than the answer.
                transport.close()
                return
            self.gate.lingering += 1
            self._lingering = True
            if transport.can_write_eof():
                transport.write_eof()
            self._idle_timer = self.loop.call_later(LINGER_S, transport.abort)
            return
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # drained, never parsed
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.gate.busy(self)
        self._cancel_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self.pipeline:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a pipelined request just started: busy, not idle
        self.gate.idle(self, self.loop.time())
        self._arm_timer()

    def handle_websocket_upgrade(self) -> None:
        self.gate.forget(self)
        self._cancel_timer()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.forget(self)
        if self._lingering:
            self._lingering = False
            self.gate.lingering -= 1
        self._cancel_timer()
        super().connection_lost(exc)

    # -- the idle timer --------------------------------------------------------------

    def _arm_timer(self) -> None:
        self._cancel_timer()
        timeout = self.gate.limits.handshake_timeout_s
        if timeout > 0:
            self._idle_timer = self.loop.call_later(timeout, self._on_idle_timeout)

    def _cancel_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle_timeout(self) -> None:
        self._idle_timer = None
        self.gate.timed_out(self)


class QuietWebSocketProtocol(WebSocketsSansIOProtocol):
    """See the module docstring: peer mistakes are not hub errors, no headers logged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.logger = WIRE_LOGGER
        self.conn.debug = False

    async def send(self, message: Any) -> None:
        if self.close_sent and message["type"] in ("websocket.send", "websocket.close"):
            # Closed by the protocol layer (a peer's protocol error), or already by us.
            raise ClientDisconnected()
        await super().send(message)

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError:
                self.frames = []
                logger.info("closed a WebSocket with 1007: its text was not UTF-8")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()
