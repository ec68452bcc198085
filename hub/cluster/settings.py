"""``ems hub serve --cluster URL`` (docs/configuration.md, "Hub cluster")."""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from hub.cluster.lease import DEFAULT_LEASE_S
from hub.cluster.wire import is_valid_hub_id

SCHEMES: Final = ("redis", "rediss", "unix")


class ClusterConfigError(ValueError):
    """A cluster setting that cannot be used; the message names the setting."""


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    url: str
    hub_id: str
    lease_s: float = DEFAULT_LEASE_S
    watch_ttl_s: float = 30.0  # a hub re-announces its watches every third of this
    # Frames for other hubs are published once the loop has run what is ready (0: one
    # turn), and while a publish is in flight the next ones gather: batches grow with
    # the load, and a quiet hub adds no timer wake-up to a reading's way.
    flush_delay_s: float = 0.0
    command_timeout_s: float = 2.0  # a Redis command slower than this: Redis is down
    snapshot_wait_s: float = 2.0  # a new dashboard waits this long for the owner's snapshot

    @classmethod
    def from_url(cls, url: str, hub_id: str | None = None) -> ClusterSettings:
        """Checked settings; :class:`ClusterConfigError` names ``--cluster`` or the hub id."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ClusterConfigError(
                f"--cluster: expected redis://HOST[:PORT][/DB], rediss://... or unix://PATH, "
                f"got {parts.scheme or 'no'} scheme"
            )
        if parts.scheme != "unix" and not parts.hostname:
            raise ClusterConfigError("--cluster: the URL names no host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as err:
            raise ClusterConfigError(f"--cluster: {err}") from err
        chosen = hub_id or default_hub_id()
        if not is_valid_hub_id(chosen):
            raise ClusterConfigError(
                f"EMS_CLUSTER_HUB_ID: 1 to 64 of A-Z a-z 0-9 _ - ., got {chosen!r}"
            )
        return cls(url=url, hub_id=chosen)


def default_hub_id() -> str:
    """Host name, process id and a random part: unique even for a restarted process."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40] or "hub"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"
