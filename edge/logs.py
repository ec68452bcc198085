"""The agent's log output: plain text by default, or one JSON object per line.

``ems edge run --log-format json`` (or ``EMS_LOG_FORMAT=json``) writes each
record as one line of JSON for a log shipper (Loki, Vector, journald's
``MESSAGE`` parsed downstream)::

    {"ts": "2026-11-26T05:30:00.123Z", "level": "WARNING", "logger": "edge.poller",
     "msg": "device meter (bus rs485, unit 2) failing: ...", "device": "meter",
     "bus": "rs485", "unit": 2, "error": "..."}

``msg`` is the formatted message, as in the text form; the other keys are the
structured fields the call passed with ``extra=`` (a device, a bus, a delay, a
count, a seq range). Calls stay %-style (STYLE.md); ``extra`` only adds keys.

Under systemd (``JOURNAL_STREAM`` set) the journal stamps each line itself, so
the text form leaves out our own timestamp.
"""

from __future__ import annotations

import enum
import json
import logging
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from telemetry import format_ts
from telemetry.redaction import redact

__all__ = ["JsonFormatter", "LogFormat", "configure", "resolve_format"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT: Final = "%(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has: anything else on a record came with ``extra=``.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def resolve_format(option: str | None, environ: Mapping[str, str]) -> LogFormat:
    """The ``--log-format`` option, else ``EMS_LOG_FORMAT``, else text.

    Raises ``ValueError`` naming the source of a value that is neither.
    """
    if option:
        source, value = "--log-format", option
    else:
        source, value = "EMS_LOG_FORMAT", environ.get("EMS_LOG_FORMAT", "").strip().lower()
    value = value or LogFormat.TEXT
    try:
        return LogFormat(value)
    except ValueError:
        raise ValueError(f"{source}: expected 'text' or 'json', not {value!r}") from None


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, then the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": format_ts(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # The message was redacted when the record was made (telemetry/redaction.py);
        # fields given as ``extra`` and the traceback are added later: redact them here.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
        # default=str: a field that is no JSON type (a Path, an enum) is written as text.
        return json.dumps(entry, default=str, ensure_ascii=False, separators=(", ", ": "))


def configure(log_format: LogFormat, *, journal: bool) -> None:
    """Give the root logger's handlers (``ems`` set them up) the chosen form."""
    formatter: logging.Formatter
    if log_format is LogFormat.JSON:
        formatter = JsonFormatter()
    else:
        formatter = logging.Formatter(JOURNAL_FORMAT if journal else TEXT_FORMAT)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(formatter)
