"""Bus pollers against a real Modbus TCP server on loopback (the simulator's device server)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from drivers.bus import Backend, BusConfig, BusType
from edge.config import DeviceConfig, Role
from edge.health import DeviceHealth, DeviceState, Transition
from edge.poller import DEVICE_BACKOFF, BusPoller, PolledDevice
from simulation.default_site import REGISTER_MAPS, Unit, encode_site
from simulation.modbus_server import DeviceServer, DeviceSpec, Fault, FaultKind
from simulation.plant import Plant
from telemetry.backoff import BackoffPolicy
from tests.support.polling import until
from tests.tcp_proxy import CutMode, TcpProxy

START = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)  # noon in June: the PV array produces


@pytest.fixture
async def server() -> AsyncIterator[tuple[DeviceServer, dict[str, dict[str, object]]]]:
    sections = Plant("sunny", seed=1, start=START).state.sections()
    images = encode_site(sections)
    specs = [DeviceSpec(int(u), images[u], REGISTER_MAPS[u].max_count) for u in Unit]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0)) as served:
        yield served, {k: dict(v) for k, v in sections.items()}


def devices_on(bus: BusConfig) -> list[PolledDevice]:
    policy = BackoffPolicy(1.0, 2.0)
    configs = [
        DeviceConfig(name="meter", role=Role.GRID, profile="eastron_sdm630", bus=bus.name, unit=2),
        DeviceConfig(name="bms", role=Role.BATTERY, profile="seplos_v3", bus=bus.name, unit=4),
        DeviceConfig(name="inverter", role=Role.INVERTER, profile="sunspec", bus=bus.name, unit=1),
    ]
    return [PolledDevice(c, DeviceHealth(c.name, policy)) for c in configs]


@contextlib.asynccontextmanager
async def polling(poller: BusPoller) -> AsyncIterator[None]:
    task = asyncio.create_task(poller.run(), name="test.poller")
    try:
        yield
    finally:
        # Cancelled until it ends: Python 3.11's asyncio.wait_for (inside pymodbus) can
        # swallow a cancellation that lands as its read completes (CPython gh-86296), and
        # the poller would go on polling (the agent does the same: edge/agent.py).
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.2)
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_devices_are_read_and_decoded_with_their_read_time(
    server: tuple[DeviceServer, dict[str, dict[str, object]]],
) -> None:
    served, plant = server
    bus = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=served.tcp_port, timeout_s=0.3)
    devices = devices_on(bus)
    poller = BusPoller(bus, devices, interval_s=0.2, read_timeout_s=5.0)
    async with polling(poller):
        await until(lambda: poller.cycles >= 3)
    loop_now = asyncio.get_running_loop().time()
    for device in devices:
        assert device.health.state is DeviceState.OK, device.health.last_error
        snapshot = device.health.fresh(loop_now, 5.0)
        assert snapshot is not None
    meter = devices[0].health.snapshot
    assert meter is not None
    grid = meter.sections["grid"]
    assert grid["power_w"] == pytest.approx(plant["grid"]["power_w"], rel=1e-5)
    assert grid["voltage_v"] == pytest.approx(plant["grid"]["voltage_v"], rel=1e-5)
    inverter = devices[2].health.snapshot
    assert inverter is not None
    assert inverter.sections["inverter"]["ac_power_w"] == pytest.approx(
        plant["inverter"]["ac_power_w"], abs=1.0
    )


async def test_a_silent_device_backs_off_without_stalling_the_others(
    server: tuple[DeviceServer, dict[str, dict[str, object]]],
) -> None:
    served, _ = server
    bus = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=served.tcp_port, timeout_s=0.25)
    devices = devices_on(bus)
    meter, bms = devices[0].health, devices[1].health
    transitions: list[Transition] = []
    poller = BusPoller(
        bus, devices[:2], interval_s=0.2, read_timeout_s=5.0, on_transition=transitions.append
    )
    served.set_fault(4, Fault(FaultKind.SILENT))
    loop = asyncio.get_running_loop()
    meter_reads: list[float] = []
    async with polling(poller):
        await until(lambda: meter.snapshot is not None)
        end = loop.time() + 4.0
        while loop.time() < end:
            snapshot = meter.snapshot
            if snapshot is not None and snapshot.read_mono not in meter_reads:
                meter_reads.append(snapshot.read_mono)
            await asyncio.sleep(0.02)
        assert bms.state is DeviceState.FAILING
        assert "no response" in bms.last_error.lower() or "within" in bms.last_error
        # The BMS waited its backoff (1 s, then up to 2 s) between attempts: in 4 s
        # a handful of attempts, not one per 0.2 s cycle.
        assert 1 <= bms.failures <= 6
        # Meanwhile the meter kept being read: never a gap long enough to go stale.
        gaps = [b - a for a, b in itertools.pairwise(meter_reads)]
        assert len(meter_reads) >= 8
        assert max(gaps) < 1.5
        assert meter.state is DeviceState.OK
        # Plugged back in: the BMS reads again after its backoff.
        served.set_fault(4, Fault(FaultKind.NONE))
        await until(lambda: bms.state is DeviceState.OK)
    assert [(t.device, t.state) for t in transitions if t.device == "bms"] == [
        ("bms", DeviceState.FAILING),
        ("bms", DeviceState.OK),
    ]


async def test_an_unreachable_bus_marks_its_devices_failing_and_is_reopened() -> None:
    # A port with nothing behind it (the server is started on it later).
    async with DeviceServer([], tcp=("127.0.0.1", 0)) as probe:
        port = probe.tcp_port
    bus = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=port, timeout_s=0.3)
    devices = devices_on(bus)[:1]
    poller = BusPoller(
        bus, devices, interval_s=0.2, read_timeout_s=5.0, bus_backoff=BackoffPolicy(0.2, 0.4)
    )
    health = devices[0].health
    async with polling(poller):
        await until(lambda: health.state is DeviceState.FAILING)
        assert "bus lan" in health.last_error
        images = encode_site(Plant("sunny", seed=1, start=START).state.sections())
        spec = DeviceSpec(2, images[Unit.GRID_METER], REGISTER_MAPS[Unit.GRID_METER].max_count)
        async with DeviceServer([spec], tcp=("127.0.0.1", port)):
            await until(lambda: health.state is DeviceState.OK)


@pytest.mark.parametrize("backend", [Backend.PYMODBUS, Backend.MINIMALMODBUS])
async def test_an_rtu_bus_on_a_pseudo_terminal(backend: Backend) -> None:
    sections = Plant("sunny", seed=1, start=START).state.sections()
    images = encode_site(sections)
    specs = [DeviceSpec(int(u), images[u], REGISTER_MAPS[u].max_count) for u in Unit]
    async with DeviceServer(specs, tcp=None, rtu=True, baudrate=115200) as served:
        bus = BusConfig(
            "rs485",
            BusType.RTU,
            device=served.rtu_path,
            baudrate=115200,
            timeout_s=0.5,
            backend=backend,
        )
        config = DeviceConfig(
            name="meter", role=Role.GRID, profile="eastron_sdm630", bus="rs485", unit=2
        )
        device = PolledDevice(config, DeviceHealth("meter", BackoffPolicy(1.0, 2.0)))
        poller = BusPoller(bus, [device], interval_s=0.2, read_timeout_s=10.0)
        async with polling(poller):
            await until(lambda: device.health.snapshot is not None, within=60)
    snapshot = device.health.snapshot
    assert snapshot is not None
    assert snapshot.sections["grid"]["power_w"] == pytest.approx(
        sections["grid"]["power_w"], rel=1e-5
    )


async def test_a_device_behind_a_bus_down_20_s_is_read_again_within_seconds(
    server: tuple[DeviceServer, dict[str, dict[str, object]]],
) -> None:
    # The agent's own backoffs (devices 1-60 s, bus reopen capped at 2.5 s): a
    # 20 s outage must not leave the devices waiting out a backoff grown meanwhile.
    served, _ = server
    async with TcpProxy("127.0.0.1", served.tcp_port) as proxy:
        bus = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=proxy.port, timeout_s=0.3)
        configs = [
            DeviceConfig(name="meter", role=Role.GRID, profile="eastron_sdm630", bus="lan", unit=2),
            DeviceConfig(name="bms", role=Role.BATTERY, profile="seplos_v3", bus="lan", unit=4),
        ]
        devices = [PolledDevice(c, DeviceHealth(c.name, DEVICE_BACKOFF)) for c in configs]
        poller = BusPoller(bus, devices, interval_s=0.5, read_timeout_s=5.0)
        loop = asyncio.get_running_loop()
        async with polling(poller):
            await until(lambda: all(d.health.state is DeviceState.OK for d in devices))
            await proxy.cut(CutMode.REFUSE)
            await until(lambda: all(d.health.state is DeviceState.FAILING for d in devices))
            # Each device names the bus as unreachable, not another device's request.
            for device in devices:
                error = device.health.last_error
                assert error.startswith(f"bus lan unreachable (127.0.0.1:{proxy.port})"), error
                assert "unit" not in error, error
            await asyncio.sleep(20.0)
            assert all(d.health.state is DeviceState.FAILING for d in devices)
            await proxy.restore()
            back = loop.time()
            await until(lambda: all(d.health.state is DeviceState.OK for d in devices), within=60)
            delay = loop.time() - back
    # Reopened within the capped, jittered 2.5 s, then read at once.
    assert delay < 4.0
