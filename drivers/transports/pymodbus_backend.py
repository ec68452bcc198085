"""pymodbus 3.16.1 async clients (TCP, and RTU on a serial line) behind our interface.

pymodbus's own retries are off (``retries=0``): we retry here, so the count and
the inter-frame silence come from :class:`~drivers.bus.BusConfig`. The client's
``trace_packet`` hook records the bytes each request got back, so a timeout can
be told apart from garbage or another unit's frame (pymodbus drops both quietly).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Self

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from drivers.bus import BusConfig, BusType
from drivers.errors import NoResponse, NotConnected
from drivers.registers import RegisterType
from drivers.transports.base import Request
from drivers.transports.mapping import (
    check_pymodbus_response,
    check_pymodbus_write,
    from_pymodbus,
)

logger = logging.getLogger(__name__)
# pymodbus logs every timeout and every dropped frame at ERROR; we raise each one as a
# typed error that the caller logs once, so its own lines would only double them.
logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)


class PymodbusTransport:
    """One pymodbus client and one lock for one bus."""

    def __init__(self, config: BusConfig) -> None:
        self.config = config
        self._lock = asyncio.Lock()
        self._received = bytearray()
        self._transactions = 0
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    @property
    def transactions(self) -> int:
        return self._transactions

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._received.clear()
        else:
            # pymodbus passes its whole receive buffer each time; keep the longest view.
            if not data.startswith(bytes(self._received)):
                self._received.extend(data)
            else:
                self._received[:] = data
        return data

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        cfg = self.config
        if cfg.type is BusType.TCP:
            return AsyncModbusTcpClient(
                cfg.host,
                port=cfg.port,
                timeout=cfg.timeout_s,
                retries=0,
                reconnect_delay=0.1,
                reconnect_delay_max=5.0,
                trace_packet=self._trace,
            )
        return AsyncModbusSerialClient(
            cfg.device,
            baudrate=cfg.baudrate,
            bytesize=cfg.bytesize,
            parity=cfg.parity.value,
            stopbits=cfg.stopbits,
            timeout=cfg.timeout_s,
            retries=0,
            reconnect_delay=0.1,
            reconnect_delay_max=5.0,
            trace_packet=self._trace,
        )

    async def __aenter__(self) -> Self:
        self._client = self._make_client()
        if not await self._client.connect():
            self._client.close()
            self._client = None
            raise NotConnected(f"bus unreachable: cannot open {self.config.endpoint}", unit=None)
        logger.debug("bus %s open on %s", self.config.name, self.config.endpoint)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _call(self, request: Request) -> ModbusPDU:
        client = self._client
        if client is None:
            raise NotConnected("transport is not open", unit=request.unit)
        count, unit = request.count, request.unit
        match request.register_type:
            case RegisterType.HOLDING:
                return await client.read_holding_registers(
                    request.address, count=count, device_id=unit
                )
            case RegisterType.INPUT:
                return await client.read_input_registers(
                    request.address, count=count, device_id=unit
                )
            case RegisterType.COIL:
                return await client.read_coils(request.address, count=count, device_id=unit)
            case RegisterType.DISCRETE:
                return await client.read_discrete_inputs(
                    request.address, count=count, device_id=unit
                )

    async def read(
        self, register_type: RegisterType, address: int, count: int, *, unit: int
    ) -> tuple[int, ...]:
        request = Request(unit, register_type, address, count)
        return await self._transact(request, lambda: self._call(request))

    async def _write_call(self, request: Request, values: tuple[int, ...]) -> ModbusPDU:
        client = self._client
        if client is None:
            raise NotConnected("transport is not open", unit=request.unit)
        if len(values) == 1:
            return await client.write_register(request.address, values[0], device_id=request.unit)
        return await client.write_registers(request.address, list(values), device_id=request.unit)

    async def write_registers(self, address: int, values: Sequence[int], *, unit: int) -> None:
        words = tuple(values)
        request = Request(unit, RegisterType.HOLDING, address, len(words))
        await self._transact(request, lambda: self._write_call(request, words), write=True)

    async def _transact(
        self,
        request: Request,
        call: Callable[[], Awaitable[ModbusPDU]],
        *,
        write: bool = False,
    ) -> tuple[int, ...]:
        rtu = self.config.type is BusType.RTU
        async with self._lock:
            attempt = 0
            while True:
                self._transactions += 1
                # Serial Line V1.02, 2.5.1.1: the line stays silent between frames;
                # after a failure, a late answer gets time to drain (pymodbus drops
                # what arrives before the next request).
                silence = self.config.inter_frame_s + self.config.drain_s
                try:
                    response = await call()
                    silence = self.config.inter_frame_s
                    if write:
                        check_pymodbus_write(request, response)
                        return ()
                    return check_pymodbus_response(request, response)
                except (ModbusException, OSError) as err:
                    failure = from_pymodbus(request, err, bytes(self._received), rtu=rtu)
                    # A write is never repeated: the first may have been carried out.
                    retry = isinstance(failure, NoResponse) and not write
                    if not retry or attempt >= self.config.retries:
                        raise failure from err
                    attempt += 1
                    logger.debug("%s: retry %d", failure, attempt)
                finally:
                    await asyncio.sleep(silence)
