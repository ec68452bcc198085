"""A software null-modem cable: two pseudo-terminals whose bytes cross over.

The RTU server opens one end (``server_path``), a serial client (our drivers,
minimalmodbus, mbpoll, QModMaster ...) opens the other (``client_path``), both as
ordinary serial ports. The masters are relayed on the event loop; we hold each
slave end open ourselves so that a client closing its port does not hang up the
pty (a master reads EIO while no slave is open).

A pty carries bytes at memory speed. With ``baudrate``, the bridge paces them
like a serial line instead: each chunk is delivered when its last character
would have arrived (11 bits per character, Modbus over Serial Line V1.02,
2.5.1.1), after whatever is still on the wire in that direction, so a
benchmark sees a 9600-baud bus's real transaction times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)

_CHUNK = 4096


class PtyBridge:
    """``async with PtyBridge() as bridge``: ``bridge.server_path``, ``bridge.client_path``."""

    def __init__(self, *, baudrate: int | None = None) -> None:
        if baudrate is not None and baudrate <= 0:
            raise ValueError("baudrate must be > 0")
        self._seconds_per_byte = 11 / baudrate if baudrate else 0.0
        self._line_free_at: dict[int, float] = {}
        self._fds: list[int] = []
        self.server_path = ""
        self.client_path = ""
        self._masters: tuple[int, int] | None = None
        self.bytes_relayed = 0

    def _pair(self) -> tuple[int, str]:
        master, slave = os.openpty()
        # Raw mode on the slave: no echo, no line discipline, 8-bit clean (RTU is binary).
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._fds += [master, slave]
        return master, os.ttyname(slave)

    def _relay(self, source: int, sink: int) -> None:
        try:
            data = os.read(source, _CHUNK)
        except BlockingIOError:
            return
        except OSError as err:  # EIO: the other side is gone for now
            logger.debug("pty read: %s", err)
            return
        if self._seconds_per_byte:
            loop = asyncio.get_running_loop()
            start = max(loop.time(), self._line_free_at.get(sink, 0.0))
            arrival = start + len(data) * self._seconds_per_byte
            self._line_free_at[sink] = arrival
            loop.call_at(arrival, self._write, sink, data)
            return
        self._write(sink, data)

    def _write(self, sink: int, data: bytes) -> None:
        if self._masters is None:
            return  # closed while the bytes were on the wire
        view = memoryview(data)
        while view:
            try:
                written = os.write(sink, view)
            except BlockingIOError:
                continue
            except OSError as err:
                logger.debug("pty write: %s", err)
                return
            view = view[written:]
        self.bytes_relayed += len(data)

    async def __aenter__(self) -> Self:
        server_master, self.server_path = self._pair()
        client_master, self.client_path = self._pair()
        self._masters = (server_master, client_master)
        loop = asyncio.get_running_loop()
        loop.add_reader(server_master, self._relay, server_master, client_master)
        loop.add_reader(client_master, self._relay, client_master, server_master)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        if self._masters is not None:
            for fd in self._masters:
                loop.remove_reader(fd)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._masters = None
