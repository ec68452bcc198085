"""Transports and the device driver against real servers: TCP loopback and RTU on a pty.

Failure cases: a unit that stops answering, an exception code, garbage on the
line, another unit id answering. Each raises its typed error within the bus
timeout, and the bus then serves the other units as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from drivers.bus import Backend, BusConfig, BusType
from drivers.device import Device, scan
from drivers.errors import (
    BadFrame,
    ExceptionCode,
    ExceptionResponse,
    ModbusError,
    NoResponse,
    NotConnected,
    WrongUnit,
)
from drivers.registers import RegisterType
from drivers.transports import Transport, open_transport
from simulation.modbus_server import DeviceServer, DeviceSpec, Fault, FaultKind
from tests.support.ports import free_port

H, IR = RegisterType.HOLDING, RegisterType.INPUT
TIMEOUT_S = 0.3
# Under a loaded CI machine a failure may take longer than the timeout to surface;
# this bounds "within the timeout" without making the test flaky.
SLACK_S = 2.0

IMAGES = {
    1: {H: {100 + i: 1000 + i for i in range(10)}},
    2: {IR: {0: 0x4366, 1: 0x8000}},
    3: {H: {7: 7}, IR: {7: 77}},
}


@pytest.fixture
async def server() -> AsyncIterator[DeviceServer]:
    specs = [DeviceSpec(unit, image) for unit, image in IMAGES.items()]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=True) as srv:
        yield srv


BUSES = ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"]


def _config(kind: str, srv: DeviceServer, retries: int = 0) -> BusConfig:
    if kind == "tcp":
        return BusConfig(
            "lan",
            BusType.TCP,
            host="127.0.0.1",
            port=srv.tcp_port,
            timeout_s=TIMEOUT_S,
            retries=retries,
        )
    backend = Backend.MINIMALMODBUS if kind.endswith("minimalmodbus") else Backend.PYMODBUS
    return BusConfig(
        "rs485",
        BusType.RTU,
        device=srv.rtu_path,
        baudrate=115200,
        timeout_s=TIMEOUT_S,
        retries=retries,
        backend=backend,
    )


async def _healthy(transport: Transport) -> None:
    """The bus still answers the other units correctly."""
    assert await transport.read(H, 100, 10, unit=1) == tuple(range(1000, 1010))
    assert await transport.read(IR, 0, 2, unit=2) == (0x4366, 0x8000)


@pytest.mark.parametrize("kind", BUSES)
async def test_reads_registers_of_each_table(server: DeviceServer, kind: str) -> None:
    async with open_transport(_config(kind, server)) as transport:
        await _healthy(transport)
        assert await transport.read(H, 7, 1, unit=3) == (7,)
        assert await transport.read(IR, 7, 1, unit=3) == (77,)
        assert transport.transactions == 4


@pytest.mark.parametrize("kind", BUSES)
async def test_a_silent_unit_times_out_then_the_bus_serves_the_others(
    server: DeviceServer, kind: str
) -> None:
    server.set_fault(1, Fault(FaultKind.SILENT))
    async with open_transport(_config(kind, server, retries=1)) as transport:
        started = time.monotonic()
        with pytest.raises(NoResponse) as caught:
            await transport.read(H, 100, 10, unit=1)
        elapsed = time.monotonic() - started
        assert TIMEOUT_S * 2 * 0.9 <= elapsed < TIMEOUT_S * 2 + SLACK_S  # 1 retry
        assert caught.value.unit == 1
        assert caught.value.address == 100
        assert transport.transactions == 2
        assert await transport.read(IR, 0, 2, unit=2) == (0x4366, 0x8000)
        server.set_fault(1, Fault())
        await _healthy(transport)


@pytest.mark.parametrize("kind", BUSES)
async def test_a_unit_not_on_the_bus_is_silent(server: DeviceServer, kind: str) -> None:
    async with open_transport(_config(kind, server)) as transport:
        with pytest.raises(NoResponse):
            await transport.read(H, 0, 1, unit=9)
        await _healthy(transport)


@pytest.mark.parametrize("kind", BUSES)
async def test_exception_codes_are_typed_and_not_retried(server: DeviceServer, kind: str) -> None:
    async with open_transport(_config(kind, server, retries=3)) as transport:
        with pytest.raises(ExceptionResponse) as caught:
            await transport.read(H, 5000, 2, unit=1)  # outside unit 1's table
        assert caught.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS
        assert transport.transactions == 1
        server.set_fault(2, Fault(FaultKind.EXCEPTION, code=0x06))
        with pytest.raises(ExceptionResponse) as caught:
            await transport.read(IR, 0, 2, unit=2)
        assert caught.value.code is ExceptionCode.SERVER_DEVICE_BUSY
        server.set_fault(2, Fault())
        await _healthy(transport)


@pytest.mark.parametrize("kind", BUSES)
async def test_garbage_on_the_line_is_a_bad_frame(server: DeviceServer, kind: str) -> None:
    server.set_fault(1, Fault(FaultKind.GARBAGE))
    async with open_transport(_config(kind, server)) as transport:
        with pytest.raises((BadFrame, NotConnected)) as caught:
            await transport.read(H, 100, 10, unit=1)
        assert caught.value.unit == 1
        server.set_fault(1, Fault())
        # TCP: the peer's garbage may cost the connection; the client reconnects.
        for _ in range(20):
            try:
                await _healthy(transport)
                break
            except NotConnected:
                await asyncio.sleep(0.1)
        else:
            await _healthy(transport)


@pytest.mark.parametrize("kind", BUSES)
async def test_an_answer_from_another_unit_is_refused(server: DeviceServer, kind: str) -> None:
    server.set_fault(1, Fault(FaultKind.WRONG_UNIT, other_unit=7))
    async with open_transport(_config(kind, server)) as transport:
        with pytest.raises(WrongUnit) as caught:
            await transport.read(H, 100, 10, unit=1)
        assert caught.value.answered_by == 7
        server.set_fault(1, Fault())
        await _healthy(transport)


@pytest.mark.parametrize("kind", BUSES)
async def test_scan_lists_the_units_that_answer(server: DeviceServer, kind: str) -> None:
    server.set_fault(3, Fault(FaultKind.SILENT))
    async with open_transport(_config(kind, server)) as transport:
        # Unit 2 has no holding register 0: its exception response still says "here".
        assert await scan(transport, range(1, 6)) == (1, 2)


async def test_concurrent_reads_on_one_bus_are_serialised(server: DeviceServer) -> None:
    async with open_transport(_config("rtu-pymodbus", server)) as transport:
        results = await asyncio.gather(
            *(transport.read(H, 100 + i, 1, unit=1) for i in range(10)),
            *(transport.read(IR, 0, 2, unit=2) for _ in range(5)),
        )
        assert results[:10] == [(1000 + i,) for i in range(10)]
        assert results[10:] == [(0x4366, 0x8000)] * 5


async def test_a_refused_tcp_connection_is_not_connected() -> None:
    # A port just freed: nothing listens there (a fixed low port may be taken on a busy host).
    port = free_port()
    config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=port, timeout_s=TIMEOUT_S)
    with pytest.raises(NotConnected) as caught:
        async with open_transport(config):
            pass
    # No transaction was involved: the error names the endpoint, not a unit.
    assert str(caught.value) == f"bus unreachable: cannot open 127.0.0.1:{port}"
    assert caught.value.unit is None


@pytest.mark.parametrize("backend", list(Backend))
async def test_a_missing_serial_device_is_not_connected(backend: Backend) -> None:
    config = BusConfig("rs485", BusType.RTU, device="/dev/does-not-exist", backend=backend)
    with pytest.raises(NotConnected):
        async with open_transport(config):
            pass


async def test_device_read_failure_raises_and_never_returns_values(server: DeviceServer) -> None:
    async with open_transport(_config("tcp", server)) as transport:
        device = Device(transport, unit=1, profile="eastron_sdm630")
        with pytest.raises(ModbusError):
            await device.read()  # unit 1 has no SDM630 input registers
        meter = Device(transport, unit=2, profile="eastron_sdm120")
        with pytest.raises(ExceptionResponse):
            await meter.read()  # only 2 of the 76 registers exist


def test_bus_config_is_validated() -> None:
    with pytest.raises(ValueError, match="needs a device"):
        BusConfig("rs", BusType.RTU)
    with pytest.raises(ValueError, match="rtu only"):
        BusConfig("lan", BusType.TCP, host="h", backend=Backend.MINIMALMODBUS)
    assert BusConfig("rs", BusType.RTU, device="/dev/x", baudrate=9600).inter_frame_s == (
        pytest.approx(3.5 * 11 / 9600)
    )
    assert BusConfig("rs", BusType.RTU, device="/dev/x", baudrate=115200).inter_frame_s == 0.00175
