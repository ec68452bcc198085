"""The installed version of EMS Switchboard.

``version`` in pyproject.toml is the one place it is written; everything that
shows a version (``ems --version``, the hub's OpenAPI document) reads it back
from the installed distribution's metadata.
"""

from __future__ import annotations

import importlib.metadata
from typing import Final

DISTRIBUTION: Final = "ems-switchboard"


def installed_version() -> str:
    """The version of the installed distribution, or a hint when it is not installed."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"
