"""One rate-limited path for refusals, uvicorn's lines included (docs/security.md).

uvicorn writes two lines for every handshake the application refuses (its own
``"WebSocket /path" 403`` and the ``websockets`` library's ``connection
rejected (403 Forbidden)``), which bypasses the hub's refusal rate limit: a
scan writes two lines per try. :class:`UvicornRefusalFilter` drops those two
(every refusal at our doors is logged by hub/refusals.py, within its budget)
sends uvicorn's per-connection protocol complaints (a request that is not
HTTP, an unsupported upgrade) through the same budget, and moves the lines it
writes for every accepted socket to debug level.

Secrets are kept out of every line by telemetry/redaction.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from hub.gatekeeper import LogLimiter

# The templates (``record.msg``, before formatting) of the lines uvicorn and
# websockets write when our application refuses a handshake (a close before
# accept): the hub logs those refusals itself (hub/refusals.py).
_REFUSAL_ECHOES: Final = frozenset(
    {
        '%s - "WebSocket %s" 403',  # uvicorn (websockets-sansio and websockets impls)
        "connection rejected (%d %s)",  # websockets' ServerProtocol.send_response
    }
)

# Per-connection complaints uvicorn writes for bad input on the wire: kept, but
# within the refusal budget (a garbage flood must not become a log flood).
_PER_CONNECTION: Final = frozenset(
    {
        "Invalid HTTP request received.",
        "Unsupported upgrade request.",
        "opening handshake failed",
        "Invalid UTF-8 sequence received from client.",
    }
)

# One line per socket, at INFO, for every accepted WebSocket: a dashboard the
# hub accepts only to close it at once with 1013 (its dashboard cap) would write
# three lines per try outside the refusal budget, and 2,000 dashboards write
# 6,000 lines. Kept at debug level (``ems -v``); the hub logs device connects
# itself.
_PER_SOCKET: Final = frozenset(
    {
        '%s - "WebSocket %s" [accepted]',  # uvicorn
        "connection open",  # websockets' ServerProtocol
        "connection closed",
    }
)

REFUSAL_LOG_KEY: Final = "refusals"

# Where those lines come from: uvicorn's logger, and the ``websockets`` layer's
# (hub/guard.py gives it ``hub.wire``).
REFUSAL_LOGGERS: Final = ("uvicorn.error", "hub.wire")


class UvicornRefusalFilter(logging.Filter):
    """On uvicorn's and the websockets layer's loggers: one rate-limited path for refusals."""

    def __init__(self, limiter: Callable[[], LogLimiter]) -> None:
        super().__init__()
        self._limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in _REFUSAL_ECHOES:
            return False
        if record.msg in _PER_SOCKET:
            if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
                return False
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return True
        if record.msg in _PER_CONNECTION:
            decision = self._limiter().decide(REFUSAL_LOG_KEY, time.monotonic())
            if decision.suppressed_before:
                record.msg = f"{record.msg} ({decision.suppressed_before} more refusals not logged)"
            return decision.log
        return True


def install_uvicorn_refusal_filter(limiter: Callable[[], LogLimiter]) -> UvicornRefusalFilter:
    """Attach a :class:`UvicornRefusalFilter` to :data:`REFUSAL_LOGGERS`; returns it."""
    refusal_filter = UvicornRefusalFilter(limiter)
    for name in REFUSAL_LOGGERS:
        logging.getLogger(name).addFilter(refusal_filter)
    return refusal_filter


def remove_uvicorn_refusal_filter(refusal_filter: UvicornRefusalFilter) -> None:
    for name in REFUSAL_LOGGERS:
        logging.getLogger(name).removeFilter(refusal_filter)
