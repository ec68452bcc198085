"""No secret in any log line (docs/security.md, "Secrets in logs").

Secrets reach log calls in ways no call site controls: uvicorn logs every
WebSocket path with its query string (``?token=...``), the ``websockets``
library logs every request header at debug level (``Authorization: Bearer
...``, ``Cookie: ...``), and a database URL with its password can be part of a
driver's error message. So redaction is not left to call sites: the record
factory installed by :func:`install_redaction` rewrites every record when it is
created, for every logger and every handler (the ``ems`` command's, a test's
capture, a service manager's), before any of them formats it. The ``ems``
command installs it before its first line, for the hub, the edge and the CLI
alike; the hub's server installs it too, for hubs run in-process.

What is redacted (:func:`redact`): the value of a ``token=`` parameter, the
credentials of an ``Authorization`` scheme (``Bearer``, ``Basic``), cookie
headers and the hub's viewer session cookie, the password of a
``scheme://user:pass@`` URL or a ``password=`` keyword, and any value
registered with :func:`register_secret` (the viewer token, a database password).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

REDACTED: Final = "[redacted]"

# Registered literal secrets shorter than this are not searched for: replacing
# every "a" in every line would make logs unreadable and protects nothing.
MIN_LITERAL_SECRET = 6

_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # ?token=..., &token=..., access_token=... (query strings, form bodies)
    (re.compile(r"(?i)(\b[a-z_]*token=)[^&\s\"'#;,)]+"), r"\1" + REDACTED),
    # an Authorization header line (websockets logs headers at debug): all of its
    # value; the capitalized schemes anywhere else (a header in a list of tuples).
    # A lowercase "bearer token" in prose is left alone.
    (re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)[^\r\n\"']+"), r"\1" + REDACTED),
    (re.compile(r"\b(Bearer|Basic|BEARER|BASIC)(\s+)[^\s\"',)]+"), r"\1\2" + REDACTED),
    # Cookie: ... / Set-Cookie: ... header lines: everything after the name
    (re.compile(r"(?i)\b((?:set-)?cookie:\s*)[^\r\n]+"), r"\1" + REDACTED),
    # the viewer session cookie wherever it shows (hub/viewer_access.py)
    (re.compile(r"(ems_viewer=)[^;\s\"',)]+"), r"\1" + REDACTED),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\"']*:)[^@/\s\"']+@"), r"\1" + REDACTED + "@"),
    # libpq keyword form: password=... (and "password": "..." in dumps)
    (re.compile(r"(?i)\b(password[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&)]+"), r"\1" + REDACTED),
)

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(value: str | None) -> None:
    """Also redact this exact value wherever it appears (the viewer token, a password)."""
    if value and len(value) >= MIN_LITERAL_SECRET:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_arg(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value  # keeps %d and %f working
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def redact_record(record: logging.LogRecord) -> None:
    """Rewrite a record in place: its message, its arguments and its traceback."""
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    else:
        record.msg = _redact_arg(record.msg)
    args = record.args
    if isinstance(args, Mapping):
        record.args = {key: _redact_arg(value) for key, value in args.items()}
    elif isinstance(args, tuple):
        record.args = tuple(_redact_arg(value) for value in args)
    if record.args:
        _redact_whole_line(record)
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        # Formatted once here, redacted; formatters reuse a record's exc_text.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _redact_whole_line(record: logging.LogRecord) -> None:
    """A secret can span the template and an argument (``"> %s: %s"`` with
    ``Authorization`` and a bare token): judge the whole line too, and keep it
    as one string when that finds more."""
    try:
        line = record.getMessage()
    except (TypeError, ValueError):
        return  # a broken call: logging reports it when a handler formats the record
    cleaned = redact(line)
    if cleaned != line:
        record.msg, record.args = cleaned, None


def install_redaction() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
