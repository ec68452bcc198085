"""sd_notify on a real unix datagram socket: messages, the watchdog interval, never blocking."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from edge.sdnotify import Notifier


def test_ready_and_watchdog_reach_the_socket(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(tmp_path / "notify"))
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"})
        assert notifier.enabled
        assert notifier.watchdog_interval_s == 1.0
        assert notifier.ready("polling 4 devices")
        assert notifier.watchdog()
        assert server.recv(4096) == b"READY=1\nSTATUS=polling 4 devices"
        assert server.recv(4096) == b"WATCHDOG=1"


def test_an_abstract_socket_name(tmp_path: Path) -> None:
    name = f"ems-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).stopping()
        assert server.recv(4096) == b"STOPPING=1"


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s == 0.0
    assert not notifier.ready()
    # The watchdog belongs to another process: not ours to pet.
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval_s == 0.0


def test_a_receiver_that_does_not_read_never_blocks_the_sender(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(tmp_path / "notify"))
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        results = [notifier.watchdog() for _ in range(5000)]
        assert results[0]
        assert not all(results)  # the queue filled up; the sender went on
