"""Text a peer sent, made safe to put in a log line.

A device id, a rejection reason quoting a key, a frame type, an error frame's
reason: anything that came over the network may hold a newline (a forged log
line), an escape sequence (a terminal taken over) or a megabyte. Every log
call of the hub that carries a client's text, and every log call of the edge
that carries the hub's, passes it through :func:`client_text` first: one line,
printable ASCII, bounded.
"""

from __future__ import annotations

from typing import Final

MAX_LOGGED_CHARS: Final = 200


def client_text(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``value`` as one printable-ASCII line of at most about ``limit`` characters.

    Backslashes, control characters and anything outside ASCII are written as
    Python escapes (``\\n``, ``\\x1b``, ``\\u2028``), so nothing is lost to a
    reader and nothing can end the line or style the terminal. Longer text is
    cut, with how much was left out.
    """
    text = value if isinstance(value, str) else str(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    escaped = text.encode("unicode_escape").decode("ascii")
    # unicode_escape leaves printable ASCII as it is, and DEL too: escape that as well.
    escaped = escaped.replace("\x7f", "\\x7f")
    return f"{escaped}... ({cut} more characters)" if cut > 0 else escaped
