"""minimalmodbus 2.1.1 (synchronous RTU) behind our async interface.

minimalmodbus blocks and is not thread-safe: every transaction runs in a worker
thread (``asyncio.to_thread``) under this bus's ``threading.Lock``, and the
asyncio lock keeps the event loop from queueing a second call into the thread
pool meanwhile. One ``serial.Serial`` and one ``Instrument`` serve every unit on
the line; the unit id is set per transaction under the lock. minimalmodbus keeps
the inter-frame silence itself (``_calculate_minimum_silent_period``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import minimalmodbus
import serial

from drivers.bus import BusConfig, BusType
from drivers.errors import NoResponse, NotConnected
from drivers.registers import RegisterType
from drivers.transports.base import Request
from drivers.transports.mapping import from_minimalmodbus

logger = logging.getLogger(__name__)


class MinimalmodbusTransport:
    """One serial port, one instrument and two locks for one RTU bus."""

    def __init__(self, config: BusConfig) -> None:
        if config.type is not BusType.RTU:
            raise ValueError("minimalmodbus drives rtu buses only")
        self.config = config
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()
        self._instrument: minimalmodbus.Instrument | None = None
        self._transactions = 0

    @property
    def transactions(self) -> int:
        return self._transactions

    def _open(self) -> minimalmodbus.Instrument:
        cfg = self.config
        port = serial.Serial(
            cfg.device,
            baudrate=cfg.baudrate,
            bytesize=cfg.bytesize,
            parity=cfg.parity.value,
            stopbits=cfg.stopbits,
            timeout=cfg.timeout_s,
        )
        instrument = minimalmodbus.Instrument(port, 1, mode=minimalmodbus.MODE_RTU)
        instrument.clear_buffers_before_each_transaction = True
        return instrument

    async def __aenter__(self) -> Self:
        try:
            self._instrument = await asyncio.to_thread(self._open)
        except (OSError, serial.SerialException) as err:
            raise NotConnected(
                f"bus unreachable: cannot open {self.config.device}: {err}", unit=None
            ) from err
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        instrument, self._instrument = self._instrument, None
        if instrument is not None:
            async with self._lock:
                await asyncio.to_thread(instrument.serial.close)

    def _transact(self, instrument: minimalmodbus.Instrument, request: Request) -> list[int]:
        with self._thread_lock:
            instrument.address = request.unit
            code = request.register_type.function_code
            if request.register_type.is_bit:
                bits = instrument.read_bits(request.address, request.count, functioncode=code)
                return [int(b) for b in bits]
            values: list[int] = instrument.read_registers(
                request.address, request.count, functioncode=code
            )
            return values

    async def read(
        self, register_type: RegisterType, address: int, count: int, *, unit: int
    ) -> tuple[int, ...]:
        request = Request(unit, register_type, address, count)
        instrument = self._instrument
        if instrument is None:
            raise NotConnected("transport is not open", unit=unit)
        async with self._lock:
            attempt = 0
            while True:
                self._transactions += 1
                try:
                    return tuple(await asyncio.to_thread(self._transact, instrument, request))
                except (minimalmodbus.ModbusException, OSError, ValueError) as err:
                    failure = from_minimalmodbus(request, err)
                    # A late answer must not meet the next request (RTU has no
                    # transaction id); the input buffer is cleared before each request.
                    await asyncio.sleep(self.config.drain_s)
                    if not isinstance(failure, NoResponse) or attempt >= self.config.retries:
                        raise failure from err
                    attempt += 1
                    logger.debug("%s: retry %d", failure, attempt)

    def _write(
        self, instrument: minimalmodbus.Instrument, request: Request, values: tuple[int, ...]
    ) -> None:
        with self._thread_lock:
            instrument.address = request.unit
            if len(values) == 1:
                instrument.write_register(request.address, values[0], functioncode=6)
            else:
                instrument.write_registers(request.address, list(values))

    async def write_registers(self, address: int, values: Sequence[int], *, unit: int) -> None:
        words = tuple(values)
        request = Request(unit, RegisterType.HOLDING, address, len(words))
        instrument = self._instrument
        if instrument is None:
            raise NotConnected("transport is not open", unit=unit)
        async with self._lock:
            self._transactions += 1
            try:
                await asyncio.to_thread(self._write, instrument, request, words)
            except (minimalmodbus.ModbusException, OSError, ValueError) as err:
                # Never repeated: the first attempt may have been carried out.
                await asyncio.sleep(self.config.drain_s)
                raise from_minimalmodbus(request, err) from err
