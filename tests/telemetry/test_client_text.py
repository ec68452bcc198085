"""Client text made safe for one log line."""

from __future__ import annotations

from telemetry.client_text import client_text


def test_line_breaks_escapes_and_non_ascii_are_written_as_escapes() -> None:
    assert client_text("a\nCRITICAL b") == "a\\nCRITICAL b"
    assert client_text("\r\x1b[2J\x00\x7f") == "\\r\\x1b[2J\\x00\\x7f"
    assert client_text("café\u2028☀") == "caf\\xe9\\u2028\\u2600"
    assert client_text("back\\slash") == "back\\\\slash"
    assert client_text("plain_ascii-1.0 ok") == "plain_ascii-1.0 ok"


def test_long_text_is_cut_and_says_how_much_was_left_out() -> None:
    assert client_text("x" * 250) == "x" * 200 + "... (50 more characters)"
    assert client_text("y" * 10, limit=4) == "yyyy... (6 more characters)"
    assert client_text(b"\x00") == "b'\\\\x00'"


def test_the_result_is_one_line_of_printable_ascii_whatever_comes_in() -> None:
    every_char = "".join(chr(code) for code in range(0, 0x3000, 7))
    text = client_text(every_char, limit=10_000)
    assert text.isascii()
    assert text.isprintable()
