"""Which peers may say who the client is: ``--trusted-proxy`` (docs/operations.md).

Behind a reverse proxy every TCP connection comes from the proxy, so the
per-address limits (dashboards per address, wrong viewer tokens per address;
hub/limits.py, hub/guess_budget.py) would hold all its clients to one
address's share. A proxy names the client in ``X-Forwarded-For`` and the
scheme it was reached by in ``X-Forwarded-Proto``; uvicorn's proxy-headers
middleware takes both from a peer in its trusted list and ignores them from
anyone else (a client could otherwise claim any address). This module decides
that list, so it is the hub's documented setting and not uvicorn's
``FORWARDED_ALLOW_IPS`` default, which may change with uvicorn.

The pending-connection gate (hub/guard.py) works on TCP connections before any
header is read, so it only ever sees the proxy: a trusted proxy is exempt from
its per-address caps too (:func:`exempt_with_proxies`), and the proxy limits
connections per client itself.

Pure: text in, addresses out.
"""

from __future__ import annotations

import ipaddress
from typing import Final

# A proxy on the hub's own machine; the same as the default --limit-exempt.
DEFAULT_TRUSTED_PROXIES: Final[tuple[str, ...]] = ("127.0.0.1", "::1")
# The value that trusts nobody: forwarded headers are ignored from every peer.
NO_PROXY: Final = "none"


def parse_trusted_proxies(text: str) -> tuple[str, ...]:
    """Comma-separated IP addresses, or ``none``; ValueError names a bad entry.

    Addresses only, not networks: a proxy is a host the operator runs, and an
    address in a network they do not control could claim any client address.
    """
    if text.strip().lower() == NO_PROXY:
        return ()
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        raise ValueError(f"expected comma-separated IP addresses, or {NO_PROXY!r}")
    addresses: list[str] = []
    for entry in entries:
        try:
            addresses.append(str(ipaddress.ip_address(entry)))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address (a proxy is named by its address; "
                f"{NO_PROXY!r} trusts none)"
            ) from None
    return tuple(dict.fromkeys(addresses))


def exempt_with_proxies(exempt: tuple[str, ...], proxies: tuple[str, ...]) -> tuple[str, ...]:
    """``exempt`` and every trusted proxy, each once, in that order."""
    return tuple(dict.fromkeys((*exempt, *proxies)))
