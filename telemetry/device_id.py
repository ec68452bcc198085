"""Device ids (PROTOCOL.md, "Doors"): 1 to 64 characters of ``A-Z a-z 0-9 _ - .``."""

from __future__ import annotations

import re
from typing import Final

DEVICE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def is_valid_device_id(device_id: str) -> bool:
    """Whether ``device_id`` may be used on a door; anything else is refused at the handshake."""
    return DEVICE_ID_PATTERN.fullmatch(device_id) is not None
