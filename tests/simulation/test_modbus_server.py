"""The simulated site served over Modbus, read back by our drivers.

Every profile is read over TCP loopback and over RTU on a pty (pymodbus and
minimalmodbus backends); the decoded values equal the plant's state within each
register's resolution. The read plans are minimal, and the servers refuse what
the real devices refuse.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from drivers.bus import Backend, BusConfig, BusType
from drivers.device import Device
from drivers.errors import ExceptionCode, ExceptionResponse, NoResponse
from drivers.registers import RegisterType
from drivers.transports import open_transport
from simulation.default_site import REGISTER_MAPS, Unit, device_sections, encode_site
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant, Sections
from simulation.runner import SimulatedSite
from tests.drivers.precision import mismatches
from tests.support.ports import free_port

PROFILES = {
    Unit.INVERTER: "sunspec",
    Unit.GRID_METER: "eastron_sdm630",
    Unit.CHARGER: "epever_tracer",
    Unit.BMS: "seplos_v3",
}
BUSES = ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"]
NOON = datetime(2026, 6, 21, 9, 30, tzinfo=UTC)


def _plant(scenario: str = "sunny", seed: int = 3) -> Plant:
    plant = Plant(scenario, seed=seed, start=NOON)
    for _ in range(6):  # half an hour: every energy counter is past its first Wh
        plant.step(300.0)
    return plant


@pytest.fixture
async def served() -> AsyncIterator[tuple[DeviceServer, Sections]]:
    sections = _plant().state.sections()
    images = encode_site(sections)
    specs = [DeviceSpec.for_map(int(u), images[u], REGISTER_MAPS[u]) for u in Unit]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=True) as server:
        yield server, sections


def _bus(kind: str, server: DeviceServer) -> BusConfig:
    if kind == "tcp":
        return BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port, timeout_s=2.0)
    backend = Backend.MINIMALMODBUS if kind.endswith("minimalmodbus") else Backend.PYMODBUS
    return BusConfig(
        "rs485",
        BusType.RTU,
        device=server.rtu_path,
        baudrate=115200,
        timeout_s=2.0,
        backend=backend,
    )


@pytest.mark.parametrize("kind", BUSES)
@pytest.mark.parametrize("scenario", ["sunny", "night", "battery_full"])
async def test_every_device_reads_back_the_plant(kind: str, scenario: str) -> None:
    sections = _plant(scenario).state.sections()
    images = encode_site(sections)
    specs = [DeviceSpec.for_map(int(u), images[u], REGISTER_MAPS[u]) for u in Unit]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=True) as server:
        transport = open_transport(_bus(kind, server))
        async with transport:
            for unit, profile in PROFILES.items():
                device = Device(transport, unit=int(unit), profile=profile)
                reading = await device.read()
                assert device.register_map is not None
                expected = device_sections(unit, sections)
                decoded = {k: dict(v) for k, v in reading.sections.items()}
                assert mismatches(device.register_map, expected, decoded) == [], unit
    battery = decoded["battery"]
    plant_battery = sections["battery"]
    assert battery["state"] == plant_battery["state"]
    assert isinstance(battery["power_w"], float)
    assert isinstance(plant_battery["power_w"], float)
    # V x I from registers of 10 mV and 10 mA resolution.
    assert battery["power_w"] == pytest.approx(plant_battery["power_w"], abs=2.0)


async def test_the_sunspec_device_is_discoverable_and_complete(
    served: tuple[DeviceServer, Sections],
) -> None:
    server, _ = served
    async with open_transport(_bus("tcp", server)) as transport:
        assert await transport.read(RegisterType.HOLDING, 40000, 4, unit=1) == (
            0x5375,
            0x6E53,
            1,
            66,
        )
        device = Device(transport, unit=1, profile="sunspec")
        reading = await device.read()
        # Discovery: marker + 3 model headers + end, then one request for 103 and 124.
        assert reading.transactions == 1 + 3 + 1 + 1
        reading = await device.read()
        assert reading.transactions == 1
        mn = await transport.read(RegisterType.HOLDING, 40004, 16, unit=1)
        assert (
            bytes(b for w in mn for b in w.to_bytes(2, "big")).rstrip(b"\0") == b"EMS Switchboard"
        )


@pytest.mark.parametrize("kind", BUSES)
async def test_read_plans_are_minimal(served: tuple[DeviceServer, Sections], kind: str) -> None:
    server, _ = served
    async with open_transport(_bus(kind, server)) as transport:
        for unit, profile in PROFILES.items():
            device = Device(transport, unit=int(unit), profile=profile)
            await device.read()  # SunSpec discovers on its first read
            reading = await device.read()
            reg_map = device.register_map
            assert reg_map is not None
            assert reading.transactions == len(reg_map.plan) == len(reg_map.minimal_plan), unit


@pytest.mark.parametrize("kind", BUSES)
async def test_the_charger_refuses_reads_through_its_holes(
    served: tuple[DeviceServer, Sections], kind: str
) -> None:
    # drivers.profiles.epever: a Tracer 3210A answers 0x3100 x 18 but exception 02
    # to 0x3100 x 19 (0x3112 is unreadable), and to 0x311A-0x311D read as a block.
    server, _ = served
    charger = int(Unit.CHARGER)
    async with open_transport(_bus(kind, server)) as transport:
        assert len(await transport.read(RegisterType.INPUT, 0x3100, 18, unit=charger)) == 18
        assert len(await transport.read(RegisterType.INPUT, 0x311A, 2, unit=charger)) == 2
        for address, count in ((0x3100, 19), (0x3110, 11), (0x3115, 1), (0x311A, 4)):
            with pytest.raises(ExceptionResponse) as caught:
                await transport.read(RegisterType.INPUT, address, count, unit=charger)
            assert caught.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS, (address, count)
        # The bus stays usable, and the plan never touches a hole.
        reading = await Device(transport, unit=charger, profile="epever_tracer").read()
        assert reading.transactions == 4


@pytest.mark.parametrize("kind", ["tcp", "rtu-minimalmodbus"])
async def test_the_charger_answers_its_rated_data_and_battery_statistics(
    served: tuple[DeviceServer, Sections], kind: str
) -> None:
    # EPEver V2.5 "Rated data" 0x3000-0x300E and the statistical battery voltage and
    # current 0x331A-0x331C, as a third-party EPEver reader asks for them.
    server, sections = served
    charger = int(Unit.CHARGER)
    async with open_transport(_bus(kind, server)) as transport:
        rated = await transport.read(RegisterType.INPUT, 0x3000, 15, unit=charger)
        stats = await transport.read(RegisterType.INPUT, 0x331A, 3, unit=charger)
        # Still refused: the gap after the rated block, and the temperatures at 0x331D.
        for address, count in ((0x3000, 16), (0x331A, 4), (0x3314, 2), (0x3200, 4)):
            with pytest.raises(ExceptionResponse) as caught:
                await transport.read(RegisterType.INPUT, address, count, unit=charger)
            assert caught.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS, (address, count)
    # Times 100, 32-bit values low word first (V2.5 notes 5): a 150 V / 60 A / 3200 W
    # MPPT controller for a 48 V system, no load output.
    assert rated[0] == 15000
    assert rated[1] == 6000
    assert rated[2] + (rated[3] << 16) == 320000
    assert rated[4] == 4800
    assert rated[5] == 6000
    assert rated[6] + (rated[7] << 16) == 60 * 48 * 100
    assert rated[8] == 2  # charging mode: MPPT
    assert rated[9:14] == (0, 0, 0, 0, 0)
    assert rated[14] == 0
    battery = sections["battery"]
    assert isinstance(battery["voltage_v"], float)
    assert isinstance(battery["current_a"], float)
    assert stats[0] == round(battery["voltage_v"] * 100)
    current = stats[1] + (stats[2] << 16)
    current -= (1 << 32) if current & 0x8000_0000 else 0
    # Signed, > 0 charging (the protocol's battery current is > 0 discharging).
    assert current == round(-battery["current_a"] * 100)


async def test_the_meter_refuses_more_than_40_parameters(
    served: tuple[DeviceServer, Sections],
) -> None:
    server, _ = served
    async with open_transport(_bus("tcp", server)) as transport:
        assert len(await transport.read(RegisterType.INPUT, 0, 80, unit=2)) == 80
        with pytest.raises(ExceptionResponse) as caught:
            await transport.read(RegisterType.INPUT, 0, 82, unit=2)
        assert caught.value.code is ExceptionCode.ILLEGAL_DATA_VALUE
        with pytest.raises(ExceptionResponse) as caught:
            await transport.read(RegisterType.INPUT, 0x2000, 2, unit=2)
        assert caught.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS


async def test_registers_follow_the_plant_as_it_steps() -> None:
    async with SimulatedSite(tcp=("127.0.0.1", 0), seed=5, start=NOON, tick_s=3600.0) as site:
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=site.tcp_port, timeout_s=2.0)
        async with open_transport(config) as transport:
            meter = Device(transport, unit=2, profile="eastron_sdm630")
            charger = Device(transport, unit=3, profile="epever_tracer")
            before = (await charger.read()).section("solar")["energy_total_wh"]
            for _ in range(4):
                state = site.step(600.0)
            after = (await charger.read()).section("solar")["energy_total_wh"]
            assert isinstance(before, float)
            assert isinstance(after, float)
            assert after > before
            assert after == pytest.approx(state.pv.energy_total_wh, abs=5.0)  # 0.01 kWh steps
            grid = (await meter.read()).section("grid")
            assert grid["power_w"] == pytest.approx(state.grid.meter.power_w, rel=1e-6, abs=1e-3)


async def test_the_plant_loop_runs_in_accelerated_time() -> None:
    loop = asyncio.get_running_loop()
    target_s = 1800.0
    async with SimulatedSite(
        tcp=("127.0.0.1", 0), seed=5, start=NOON, speed=3600.0, tick_s=0.05
    ) as site:
        started = loop.time()
        start = site.state.time
        while (site.state.time - start).total_seconds() < target_s:
            assert loop.time() - started < 30.0, "the plant loop does not advance"
            await asyncio.sleep(0.01)
        wall = loop.time() - started
        advanced = (site.state.time - start).total_seconds()
    # Simulated time never runs ahead of speed x wall time (steps follow the clock).
    assert advanced <= 3600.0 * wall + 1e-6
    assert wall >= target_s / 3600.0


async def test_ems_sim_serves_several_sites_and_stops_cleanly() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ems",
        "sim",
        "--tcp",
        f"127.0.0.1:{port}",
        "--sites",
        "2",
        "--rtu-pty",
        "--speed",
        "60",
        "--seed",
        "11",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while len(lines) < 2:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "ems sim exited early"
            if line.startswith("site "):
                lines.append(line)
        endpoints = [re.search(r"tcp 127\.0\.0\.1:(\d+)\s+rtu (\S+)", line) for line in lines]
        assert all(endpoints)
        ports = [int(m.group(1)) for m in endpoints if m]
        assert ports == [port, port + 1]
        powers = []
        for m in endpoints:
            assert m is not None
            for config in (
                BusConfig(
                    "lan", BusType.TCP, host="127.0.0.1", port=int(m.group(1)), timeout_s=2.0
                ),
                BusConfig("rs485", BusType.RTU, device=m.group(2), baudrate=115200, timeout_s=2.0),
            ):
                async with open_transport(config) as transport:
                    reading = await Device(transport, unit=4, profile="seplos_v3").read()
                    powers.append(reading.section("battery")["soc_pct"])
        assert all(isinstance(p, float) for p in powers)
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 15)
    assert code == 0


def test_ems_sim_usage_errors_are_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ems", "sim", "--scenario", "foggy"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("ems sim: --scenario: unknown")


async def test_reads_of_an_absent_unit_are_one_line_a_minute_not_tracebacks(
    served: tuple[DeviceServer, Sections], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = served
    caplog.set_level(logging.DEBUG)
    config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port, timeout_s=0.3)
    async with open_transport(config) as transport:
        for _ in range(2):
            with pytest.raises(NoResponse):
                await transport.read(RegisterType.HOLDING, 0, 1, unit=9)
    # Silence on the wire, as on a real line, and one short line in the log.
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "Traceback" in m or "Datastore unable" in m], messages
    absent = [m for m in messages if "unit 9, which is not on this bus" in m]
    assert len(absent) == 1, messages


async def test_a_gateway_answers_for_units_it_does_not_have() -> None:
    # A gateway (a Victron GX) answers a unit id with no device with an exception
    # code, over TCP and RTU, where a plain bus stays silent.
    image = {RegisterType.HOLDING: {100: 7}}
    async with DeviceServer(
        [DeviceSpec(5, image)], tcp=("127.0.0.1", 0), rtu=True, absent_unit_code=0x0B
    ) as server:
        for kind in ("tcp", "rtu-pymodbus"):
            async with open_transport(_bus(kind, server)) as transport:
                assert await transport.read(RegisterType.HOLDING, 100, 1, unit=5) == (7,)
                with pytest.raises(ExceptionResponse) as refused:
                    await transport.read(RegisterType.HOLDING, 100, 1, unit=6)
                assert refused.value.code is ExceptionCode.GATEWAY_TARGET_FAILED
    with pytest.raises(ValueError, match="unit 0"):
        DeviceServer([DeviceSpec(0, image)], absent_unit_code=0x0A)
