"""The pty null-modem, paced like a serial line: a benchmark's 9600 baud takes 9600 baud's time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from drivers.bus import BusConfig, BusType, frame_silence_s
from drivers.device import Device
from drivers.profiles.eastron import SDM630
from drivers.transports import open_transport
from simulation.default_site import Unit, encode_site
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant

NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)


async def _poll_seconds(*, paced: bool) -> tuple[float, int]:
    images = encode_site(Plant("sunny", seed=1, start=NOON).state.sections())
    spec = DeviceSpec.for_map(2, images[Unit.GRID_METER], SDM630)
    async with DeviceServer([spec], tcp=None, rtu=True, baudrate=9600, paced=paced) as server:
        bus = BusConfig("rs485", BusType.RTU, device=server.rtu_path, baudrate=9600, timeout_s=2)
        async with open_transport(bus) as transport:
            meter = Device(transport, unit=2, profile="eastron_sdm630")
            await meter.read()  # the port's set-up, not timed
            started = time.perf_counter()
            reading = await meter.read()
            assert reading.section("grid")["frequency_hz"] > 45
            return time.perf_counter() - started, reading.transactions


async def test_a_paced_line_takes_the_time_its_bytes_need_at_9600_baud() -> None:
    seconds, transactions = await _poll_seconds(paced=True)
    assert transactions == 1
    (request,) = SDM630.plan
    # Request 8 bytes, answer 5 + 2 x registers, 11 bits each, and the 3.5-character gap.
    wire_s = (8 + 5 + 2 * request.count) * 11 / 9600 + frame_silence_s(9600)
    assert wire_s <= seconds < wire_s + 0.15, (seconds, wire_s)


async def test_an_unpaced_line_runs_at_memory_speed() -> None:
    seconds, _ = await _poll_seconds(paced=False)
    assert seconds < 0.1
