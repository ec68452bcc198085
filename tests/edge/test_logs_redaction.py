"""The agent's JSON log lines hold no secret: message, ``extra`` fields and traceback."""

from __future__ import annotations

import io
import json
import logging

from edge.logs import JsonFormatter
from telemetry.redaction import install_redaction

SECRET = "pw-61c0d2aa"


def test_json_lines_are_redacted_in_every_field() -> None:
    install_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.edge.json_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ConnectionError(f"wss://edge:{SECRET}@hub.example/ws refused")
        except ConnectionError as err:
            logger.warning(
                "hub %s unreachable: %s",
                f"wss://edge:{SECRET}@hub.example",
                err,
                exc_info=True,
                extra={"error": str(err), "header": f"Authorization: Bearer {SECRET}"},
            )
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue().strip()
    entry = json.loads(line)  # still one valid JSON object
    assert SECRET not in line
    assert entry["msg"].startswith("hub wss://edge:[redacted]@hub.example unreachable")
    assert entry["error"] == "wss://edge:[redacted]@hub.example/ws refused"
    assert entry["header"] == "Authorization: [redacted]"
    assert "ConnectionError: wss://edge:[redacted]@hub.example/ws refused" in entry["exc"]
