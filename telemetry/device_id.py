"""Device ids (docs/protocol.md, "Doors"): 1 to 64 characters of ``A-Z a-z 0-9 _ - .``.

``.`` and ``..`` are refused although they fit the charset: as a path segment
they mean "this" and "the parent", so a URL, a file name or a log that holds
such an id would not name a device.
"""

from __future__ import annotations

import re
from typing import Final

DEVICE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_DOT_SEGMENTS: Final = frozenset({".", ".."})


def is_valid_device_id(device_id: str) -> bool:
    """Whether ``device_id`` may be used on a door; anything else is refused at the handshake."""
    return DEVICE_ID_PATTERN.fullmatch(device_id) is not None and device_id not in _DOT_SEGMENTS
