"""The one path every refused handshake takes: counted, logged within a budget, closed.

A refusal is a close before accept, which uvicorn answers with HTTP 403
(docs/protocol.md, "Doors"). uvicorn's own two lines for it are dropped
(hub/log_safety.py); this module writes the hub's line instead, at most
``Hub.refusal_log``'s burst per window for all doors and reasons together, with
a count of what it left out, so a scan over thousands of device ids or tokens
writes a few lines, not thousands. Anything the client sent is escaped before
it is logged.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from starlette.websockets import WebSocket

from hub.gatekeeper import LogLimiter
from hub.log_safety import REFUSAL_LOG_KEY
from hub.metrics import Door, HubCounters
from telemetry import CloseCode
from telemetry.client_text import client_text

logger = logging.getLogger(__name__)

MAX_LOGGED_CHARS: Final = 80


def shown(value: str) -> str:
    """A client-sent value as it may appear in a log line: escaped, quoted, bounded.

    The escaping is :func:`telemetry.client_text.client_text`'s, the one helper
    for client text in logs; the quotes show where the client's text begins and
    ends (an empty id, trailing spaces), and the bound is shorter because a
    refusal line carries it beside other fields.
    """
    inner = client_text(value, MAX_LOGGED_CHARS).replace("'", "\\'")  # a quote cannot close it
    return f"'{inner}'"


def log_refusal(limiter: LogLimiter, what: str, client: str, detail: str) -> None:
    """Log one refusal within the shared budget (key ``refusals``, wall-clock independent)."""
    decision = limiter.decide(REFUSAL_LOG_KEY, time.monotonic())
    if decision.suppressed_before:
        logger.info("%d more refusals were not logged", decision.suppressed_before)
    if decision.log:
        logger.info("%s refused (client %s): %s", what, client, detail)


def client_of(websocket: WebSocket) -> str:
    return websocket.client.host if websocket.client is not None else "unknown"


async def refuse_handshake(
    websocket: WebSocket,
    *,
    counters: HubCounters,
    limiter: LogLimiter,
    door: Door,
    reason: str,
    detail: str,
) -> None:
    """Count, log (within budget) and refuse a handshake: HTTP 403, nothing accepted."""
    counters.refused[(door, reason)] += 1
    log_refusal(limiter, f"{door} door", client_of(websocket), detail)
    await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
