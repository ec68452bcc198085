"""Redaction of secrets in log lines: the lines uvicorn, websockets and drivers really write."""

from __future__ import annotations

import logging

import pytest

from telemetry.redaction import REDACTED, install_redaction, redact, register_secret

SECRET = "s3cr3t-Value_42"


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        # uvicorn's line for every WebSocket, and websockets' request line at debug
        (f'127.0.0.1:5 - "WebSocket /ws/dashboard/ems_001?token={SECRET}" [accepted]', "ems_001"),
        (f"< GET /ws/dashboard/x?since=1&token={SECRET}&b=2 HTTP/1.1", "&b=2 HTTP/1.1"),
        # request headers as websockets logs them at debug, any case
        (f"< authorization: Bearer {SECRET}", "< authorization: "),
        (f"< Authorization: bearer {SECRET}", "< Authorization: "),
        (f"< Authorization: {SECRET}", "< Authorization: "),
        (f"headers=[(b'authorization', b'Bearer {SECRET}')]", "headers"),
        (f"< cookie: ems_viewer={SECRET}; other=1", "< cookie: "),
        (f"> set-cookie: ems_viewer={SECRET}; HttpOnly", "> set-cookie: "),
        (f"session ems_viewer={SECRET}", "session ems_viewer="),
        # a database URL in a start-up line or a driver's error
        (f"cannot connect to postgresql://ems:{SECRET}@db.example:5432/ems", "db.example:5432/ems"),
        (f"dsn: host=db user=ems password={SECRET} dbname=ems", "dbname=ems"),
        (f'{{"password": "{SECRET}"}}', '"password"'),
    ],
)
def test_secrets_are_redacted(line: str, kept: str) -> None:
    cleaned = redact(line)
    assert SECRET not in cleaned
    assert REDACTED in cleaned
    assert kept in cleaned


@pytest.mark.parametrize(
    "line",
    [
        "device door refused ems_001: no bearer token",
        "storage: PostgreSQL with TimescaleDB 2.17.2",
        "GET /api/devices/ems_001/readings?from=2026-01-01T00:00:00Z&limit=10",
        "postgresql://ems@db.example/ems (no password)",
    ],
)
def test_ordinary_lines_are_left_alone(line: str) -> None:
    assert redact(line) == line


def test_a_registered_secret_is_redacted_wherever_it_appears() -> None:
    register_secret("viewer-literal-9d2f")
    register_secret("abc")  # too short to search for: would mangle every line
    assert redact("x viewer-literal-9d2f y") == f"x {REDACTED} y"
    assert redact("abc") == "abc"


def test_every_record_is_redacted_for_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    logger = logging.getLogger("tests.redaction")
    with caplog.at_level(logging.DEBUG, logger="tests.redaction"):
        logger.debug('"WebSocket %s" %d', f"/ws/dashboard/a?token={SECRET}", 403)
        logger.info("url %(url)s", {"url": f"postgresql://u:{SECRET}@h/db"})
        logger.debug("> %s: %s", "Authorization", SECRET)  # websockets' header lines
        try:
            raise ConnectionError(f"postgresql://u:{SECRET}@h/db refused")
        except ConnectionError:
            logger.exception("storage down")
    assert SECRET not in caplog.text
    assert '"WebSocket /ws/dashboard/a?token=[redacted]" 403' in caplog.text
    assert "ConnectionError: postgresql://u:[redacted]@h/db refused" in caplog.text
    assert "> Authorization: [redacted]" in caplog.text
