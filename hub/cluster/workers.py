"""``ems hub serve --workers N``: N hub processes on one machine, one port, one cluster.

Each worker is a whole hub (``ems hub serve`` with the same arguments) in its
own process, so N of them use N cores. They share the port with
``SO_REUSEPORT`` (Linux, socket(7)): each worker binds its own listening socket
to the same address and the kernel spreads new connections over them by a hash
of the client's address and port. One worker's death then costs only its own
connections; its devices reconnect, land on the others, and claim their
devices there (hub/cluster/lease.py). They share devices and dashboards
through Redis like any hubs of a cluster, so ``--workers`` needs ``--cluster``,
and each is a hub of its own name: ``{hub id}-w{number}`` (the hub id given in
``$EMS_CLUSTER_HUB_ID``, else the supervisor's default one), never the same for
two workers (two hubs of one name would take each other's dashboards for their
own and forward them nothing).

This process, the supervisor, only starts the workers, restarts one that died
(with backoff, telemetry/backoff.py, from 0.5 s up to 10 s; a worker that had
stayed up ``STABLE_AFTER_S`` starts from 0.5 s again, so deaths spread over
weeks do not each wait the cap; never once it is stopping), and passes
SIGTERM/SIGINT on to all of them; it exits 0 once they have stopped. With
``--port 0`` it picks the port first and keeps it reserved (bound with
``SO_REUSEPORT``, never listening) so every worker binds the same one.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from hub.cluster.settings import ClusterConfigError
from hub.cluster.wire import MAX_HUB_ID_CHARS, is_valid_hub_id
from telemetry.backoff import Backoff, BackoffPolicy

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0  # a worker that does not stop within this after SIGTERM is killed
RESTART_BACKOFF = BackoffPolicy(0.5, 10.0)  # the wait before restarting a worker that died
STABLE_AFTER_S = 60.0  # a worker up this long died of something new: its backoff starts over


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not listening yet)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def worker_argv(argv: Sequence[str], port: int) -> list[str]:
    """The supervisor's own arguments, less ``--workers``, bound to ``port`` with SO_REUSEPORT.

    Pure. argparse takes the last ``--port``, so the one added here wins.
    """
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [*out, "--port", str(port), "--reuse-port"]


def worker_hub_ids(hub_id: str, count: int) -> list[str]:
    """Each worker's hub id (see module docstring). Pure.

    :class:`ClusterConfigError` when ``hub_id`` leaves no room for the suffix.
    """
    ids = [f"{hub_id}-w{number}" for number in range(count)]
    if not all(is_valid_hub_id(i) for i in ids):
        room = MAX_HUB_ID_CHARS - len(ids[-1]) + len(hub_id)
        raise ClusterConfigError(
            f"EMS_CLUSTER_HUB_ID: at most {room} characters with --workers {count} "
            f"(each worker adds -w<number>), got {len(hub_id)}"
        )
    return ids


def restart_delay(restarts: Backoff, up_for_s: float) -> float:
    """The wait before restarting a worker that died after ``up_for_s`` s up. No I/O.

    Deaths in a row (each within ``STABLE_AFTER_S`` of its start) wait longer and
    longer, up to the policy's cap; a worker that had stayed up that long resets
    its backoff first, as systemd's restart limit forgets old failures.
    """
    if up_for_s >= STABLE_AFTER_S:
        restarts.reset()
    return restarts.next_delay()


@dataclass
class _Worker:
    number: int
    process: subprocess.Popen[bytes]
    restarts: Backoff
    started_at: float  # monotonic
    restart_at: float | None = None  # monotonic: it died and waits out its backoff


class Supervisor:
    """Runs the workers until a signal (see module docstring)."""

    def __init__(self, argv: Sequence[str], count: int, host: str, port: int, hub_id: str) -> None:
        self.count = count
        self.host = host
        self._hub_ids = worker_hub_ids(hub_id, count)
        self._reserved = reuse_port_socket(host, port)
        self.port = int(self._reserved.getsockname()[1])
        self._argv = worker_argv(argv, self.port)
        self._stopping = False
        self._stop_signal: signal.Signals | None = None
        self._workers: list[_Worker] = []

    def _start(self, number: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "ems", *self._argv]
        env = {
            **os.environ,
            "EMS_WORKER": str(number),
            "EMS_CLUSTER_HUB_ID": self._hub_ids[number],
        }
        return subprocess.Popen(command, env=env)

    def _signalled(self, sig: int, frame: FrameType | None) -> None:
        # No logging here: a signal that lands while this thread is inside a log
        # call would re-enter the handler's stream ("reentrant call"); the loop
        # below reports it.
        if self._stop_signal is None:
            self._stop_signal = signal.Signals(sig)
        self._stopping = True
        for worker in self._workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        previous = {s: signal.signal(s, self._signalled) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._workers = [
                _Worker(n, self._start(n), Backoff(RESTART_BACKOFF), time.monotonic())
                for n in range(self.count)
            ]
            self._announce_when_listening()
            while not self._stopping:
                for worker in self._workers:
                    self._look_after(worker)
                time.sleep(0.2)
            if self._stop_signal is not None:
                logger.info("received %s: stopping %d workers", self._stop_signal.name, self.count)
            return self._wait_stopped()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._reserved.close()

    def _look_after(self, worker: _Worker) -> None:
        """Restart a worker that died once its backoff is over; never while stopping."""
        if self._stopping:
            return
        now = time.monotonic()
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                worker.restart_at = None
                worker.process = self._start(worker.number)
                worker.started_at = now
                if self._stopping:  # the signal came while it started: pass it on
                    worker.process.terminate()
            return
        code = worker.process.poll()
        if code is not None:
            delay = restart_delay(worker.restarts, now - worker.started_at)
            logger.warning(
                "worker %d exited with %d after %.0f s: restarting it in %.1f s",
                worker.number,
                code,
                now - worker.started_at,
                delay,
            )
            worker.restart_at = now + delay

    def _announce_when_listening(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self._stopping:
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    logger.info(
                        "hub workers (%d) running on http://%s:%d", self.count, self.host, self.port
                    )
                    return
            except OSError:
                time.sleep(0.1)

    def _wait_stopped(self) -> int:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for worker in self._workers:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                worker.process.wait(remaining)
            except subprocess.TimeoutExpired:
                logger.warning("worker %d did not stop: killing it", worker.number)
                worker.process.kill()
                worker.process.wait()
        return 0
