"""The last line of defence for HTTP routes: an unexpected exception is a generic 500.

A client mistake is answered by the route itself (4xx with a one-line reason,
hub/api.py); storage being down is a 503 (hub/api.py). Anything else escaping a
route is a bug of ours: the client gets ``500 {"detail": "internal error"}``,
never the exception's text or a traceback (it may name a path, a query or a
database URL), and the log gets one line naming the route, the exception's type
and the start of its text (quoted, so it stays one line; secrets are redacted
from every log line, hub/log_safety.py). Starlette's own last-resort handler
would re-raise after answering, and uvicorn would then log the traceback; this
middleware sits inside it and keeps the exception from getting that far.

WebSocket scopes pass through untouched: the doors own their sockets' ends
(docs/protocol.md, "Close codes").
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

INTERNAL_ERROR_BODY = b'{"detail":"internal error"}'


class CatchAll:
    """ASGI middleware: an exception escaping an HTTP route becomes a generic 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as err:  # noqa: BLE001 - the point of this middleware
            route = scope.get("route")
            where = getattr(route, "path", None) or "an unmatched path"
            # repr of the start of the text: one line, whatever the text holds.
            logger.error(
                "internal error in %s %s: %s %.200r",
                scope.get("method"),
                where,
                type(err).__name__,
                str(err),
            )
            if started:
                # Half an answer is out: uvicorn drops the connection, which is all
                # that is honest now.
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(INTERNAL_ERROR_BODY)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": INTERNAL_ERROR_BODY})
