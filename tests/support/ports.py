"""A free loopback port."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port nothing listens on: bound and released, so the kernel will not hand it
    out again soon. A test may start a server there, or expect a connection to be refused.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
