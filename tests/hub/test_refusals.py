"""How a refusal line shows what the client sent: the one client-text escaping, quoted."""

from __future__ import annotations

from hub.refusals import MAX_LOGGED_CHARS, shown
from telemetry.client_text import client_text


def test_shown_escapes_as_client_text_does_and_quotes() -> None:
    forged = "x\n2026-11-26 05:30:00 CRITICAL hub: \x1b[2J\u2028"
    assert shown(forged) == f"'{client_text(forged)}'"
    assert not {"\n", "\r", "\x1b", "\u2028"} & set(shown(forged))


def test_a_quote_in_the_value_cannot_close_the_quotes() -> None:
    assert shown("a' forged='b") == "'a\\' forged=\\'b'"


def test_shown_is_bounded_and_says_how_much_was_cut() -> None:
    text = shown("d" * (MAX_LOGGED_CHARS + 1000))
    assert text.startswith("'" + "d" * MAX_LOGGED_CHARS + "...")
    assert "(1000 more characters)" in text
    assert len(text) < MAX_LOGGED_CHARS + 40
