"""systemd's notify protocol (sd_notify(3)) on a unix datagram socket, without libsystemd.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``; the agent sends
``READY=1`` once it runs and, with ``WatchdogSec=``, ``WATCHDOG=1`` at half
the interval systemd gives in ``$WATCHDOG_USEC``. Outside systemd both
variables are unset and every call does nothing: no hard dependency.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

logger = logging.getLogger(__name__)


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        # sd_notify(3): a leading "@" is Linux's abstract namespace (a NUL byte).
        self.address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        mine = not watchdog_pid or watchdog_pid == str(os.getpid())
        usec = int(watchdog_usec) if watchdog_usec.isdigit() and mine else 0
        self.watchdog_interval_s = usec / 2e6 if usec > 0 else 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines; whether they were sent (False outside systemd)."""
        if not self.address:
            return False
        message = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the event loop on a receiver that does not read.
                sock.setblocking(False)
                sock.connect(self.address)
                sock.send(message)
        except BlockingIOError:
            logger.warning("sd_notify: %r is not reading; dropped %s", self.address, assignments)
            return False
        except OSError as err:
            logger.warning("sd_notify to %r failed: %s", self.address, err)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")
