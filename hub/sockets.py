"""Thin helpers around Starlette's WebSocket: safe close and send, and the transport.

Starlette raises different things depending on when a peer vanishes
(``WebSocketDisconnect`` from ``send``, ``WebSocketDisconnected`` — a
``RuntimeError`` — once a close was sent, uvicorn's ``ClientDisconnected``, an
``OSError``). The doors use these helpers so that one place knows that list.

``TransportProbe`` is a tiny ASGI middleware. uvicorn hands every connection's
``send`` to the app as a bound method of its protocol object, whose
``transport`` attribute is the asyncio transport of that socket. The probe
stores that transport in the scope under ``SCOPE_TRANSPORT`` so the fan-out can
count the bytes still sitting in its write buffer (``get_write_buffer_size``)
and so a socket stuck behind a peer that never reads can be aborted. Under a
server that does not expose it, the key is simply absent and both features
degrade to what the server's own flow control gives. (Verified with uvicorn
0.54 on asyncio and uvloop transports; see tests/hub/test_dashboard_door.py.)

Exceptions::

    PeerGone    the peer left, or the socket was closed, while we were sending;
                the sender loops (fan-out, device replies) end on it quietly
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol, runtime_checkable

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected, WebSocketState

logger = logging.getLogger(__name__)

SCOPE_TRANSPORT = "ems.transport"

# What a vanished peer looks like, depending on the moment (see module docstring).
GONE = (WebSocketDisconnect, WebSocketDisconnected, OSError)


class PeerGone(Exception):
    """The peer left (or the socket was closed) while we were sending to it."""


class SocketLike(Protocol):
    """The part of ``starlette.websockets.WebSocket`` the hub uses."""

    @property
    def scope(self) -> MutableMapping[str, Any]: ...

    application_state: WebSocketState

    async def receive(self) -> MutableMapping[str, Any]: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@runtime_checkable
class WriteBuffered(Protocol):
    """What we use of an asyncio transport. Duck-typed on purpose: uvloop's
    ``TCPTransport`` is not a subclass of ``asyncio.WriteTransport``."""

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...

    def abort(self) -> None: ...


class TransportProbe:
    """ASGI middleware: expose each WebSocket's asyncio transport in its scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if isinstance(transport, WriteBuffered):
                scope[SCOPE_TRANSPORT] = transport
        await self.app(scope, receive, send)


def transport_of(socket: SocketLike) -> WriteBuffered | None:
    transport = socket.scope.get(SCOPE_TRANSPORT)
    return transport if isinstance(transport, WriteBuffered) else None


def buffered_bytes(socket: SocketLike) -> int:
    """Bytes written to the socket's transport that the peer has not taken yet."""
    transport = transport_of(socket)
    if transport is None or transport.is_closing():
        return 0
    return transport.get_write_buffer_size()


def buffered_bytes_probe(socket: SocketLike) -> Callable[[], int]:
    """``buffered_bytes(socket)`` as a function with the transport looked up once.

    The fan-out asks for every frame it queues; the lookup (a scope key and a
    runtime-checked protocol) costs more than the question.
    """
    transport = transport_of(socket)
    if transport is None:
        return lambda: 0

    def probe() -> int:
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    return probe


async def send_text_or_raise(socket: SocketLike, text: str) -> None:
    """Send one text frame; a vanished peer raises ``PeerGone``."""
    if socket.application_state is not WebSocketState.CONNECTED:
        raise PeerGone("socket already closed")
    try:
        await socket.send_text(text)
    except GONE as err:
        raise PeerGone(str(err)) from err


async def close_quietly(socket: SocketLike, code: int, *, within: float, reason: str = "") -> None:
    """Close with ``code`` unless already closed; a peer that never reads is aborted.

    uvicorn's ``send`` (and so the close frame) waits while the transport is
    paused behind a peer that stopped reading; after ``timeout`` we give up on
    a clean close and abort the transport, so the socket and its buffer go away.
    """
    if socket.application_state is WebSocketState.DISCONNECTED:
        return
    try:
        async with asyncio.timeout(within):
            await socket.close(code, reason or None)
    except TimeoutError:
        transport = transport_of(socket)
        logger.info("close %d timed out after %.1f s: aborting the socket", code, within)
        if transport is not None:
            transport.abort()
    except GONE:
        pass
