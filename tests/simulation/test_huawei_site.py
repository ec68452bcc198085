"""The ``huawei`` site over real TCP: values, the settle time, one client, refusals, scan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.errors import ExceptionCode, ExceptionResponse, NoResponse
from drivers.profiles import scan_settle_s
from drivers.profiles.huawei import L1_LUNA, SETTLE_S
from drivers.profiles.identify import SIGNATURES, identify
from drivers.registers import RegisterType
from drivers.transports import open_transport
from simulation.huawei_site import LAYOUT, SIM_SETTLE_S, inverter_sections
from simulation.runner import SimulatedSite
from simulation.sites import SITES, site_layout
from tests.drivers.precision import mismatches
from tests.edge.test_cli import ems, write_config

H = RegisterType.HOLDING
NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)
HUAWEI = tuple((name, sig) for name, sig in SIGNATURES if name.startswith("huawei_"))
OTHERS = tuple((name, sig) for name, sig in SIGNATURES if not name.startswith("huawei_"))


def _bus(site: SimulatedSite, timeout_s: float = 2.0) -> BusConfig:
    return BusConfig(
        "lan", BusType.TCP, host="127.0.0.1", port=site.tcp_port, timeout_s=timeout_s, retries=0
    )


@pytest.fixture
async def site() -> AsyncIterator[SimulatedSite]:
    # A tick of an hour: the plant stands still while a test reads it.
    async with SimulatedSite(
        layout=LAYOUT, tcp=("127.0.0.1", 0), start=NOON, seed=5, tick_s=3600.0
    ) as running:
        for _ in range(6):  # half an hour: every counter is past its first steps
            running.step(300.0)
        yield running


def test_the_site_is_listed_and_shows_the_plant_as_a_sun2000() -> None:
    assert site_layout("huawei") is LAYOUT
    assert LAYOUT.single_client
    assert LAYOUT.new_client_wins
    assert SIM_SETTLE_S < SETTLE_S
    shown = inverter_sections(
        {
            "inverter": {"state": "mppt", "dc_power_w": 2500.0},
            "solar": {"pv_power_w": 3100.0, "pv_voltage_v": 360.0, "pv_current_a": 8.6},
            "battery": {"state": "charging"},
            "extra": {"bms_charged_energy_wh": 1200.0},
        }
    )
    assert shown["inverter"] == {"state": "on_grid", "dc_power_w": 3100.0}
    assert shown["battery"] == {"state": "running"}
    assert shown["extra"]["pv2_current_a"] == 4.3
    assert shown["extra"]["battery_charged_energy_wh"] == 1200.0


async def test_the_agent_s_read_matches_the_plant_after_the_settle_time(
    site: SimulatedSite,
) -> None:
    expected = inverter_sections(site.state.sections())
    async with open_transport(_bus(site)) as transport:
        reading = await Device(transport, unit=1, profile="huawei_sun2000_l1_luna").read()
        again = await Device(transport, unit=1, profile="huawei_sun2000_l1_luna").read()
    decoded = {k: dict(v) for k, v in reading.sections.items()}
    assert mismatches(L1_LUNA, expected, decoded) == []
    assert reading.transactions == again.transactions == 4
    # The driver kept quiet for the profile's settle time: nothing went unanswered.
    assert site.server.first_request_ages[0] >= SETTLE_S
    assert site.server.unanswered_early == 0
    # Signs: the plant's grid and battery powers, as the protocol has them.
    assert decoded["grid"]["power_w"] == pytest.approx(expected["grid"]["power_w"], abs=0.5)
    assert decoded["battery"]["power_w"] == pytest.approx(expected["battery"]["power_w"], abs=0.5)


async def test_a_request_straight_after_connecting_gets_no_answer(site: SimulatedSite) -> None:
    async with open_transport(_bus(site, timeout_s=0.3)) as transport:
        with pytest.raises(NoResponse):
            await transport.read(H, 32080, 2, unit=1)
        await asyncio.sleep(SIM_SETTLE_S)
        assert len(await transport.read(H, 32080, 2, unit=1)) == 2
    assert site.server.unanswered_early == 1


async def test_a_second_client_takes_the_inverter_from_the_first(site: SimulatedSite) -> None:
    # The first client is a bare socket, so that it does not reconnect by itself.
    reader, writer = await asyncio.open_connection("127.0.0.1", site.tcp_port)
    await asyncio.sleep(SIM_SETTLE_S)
    # MBAP: transaction 1, protocol 0, length 6, unit 1; read holding 37760 x 1.
    writer.write(bytes.fromhex("0001 0000 0006 01 03 9380 0001"))
    answer = await asyncio.wait_for(reader.read(64), 2.0)
    assert answer[7:9] == bytes.fromhex("03 02")
    async with open_transport(_bus(site)) as second:
        await asyncio.sleep(SIM_SETTLE_S)
        assert len(await second.read(H, 37760, 1, unit=1)) == 1
        assert site.server.tcp_clients == 1
        # The inverter closed the first connection when the second came.
        assert await asyncio.wait_for(reader.read(64), 2.0) == b""
    writer.close()
    assert site.server.refused_clients == 0


async def test_the_inverter_refuses_what_the_map_says(site: SimulatedSite) -> None:
    async with open_transport(_bus(site)) as transport:
        await asyncio.sleep(SIM_SETTLE_S)
        for address, count, code in (
            (37100, 40, ExceptionCode.ILLEGAL_DATA_ADDRESS),  # touches 37139
            (37780, 10, ExceptionCode.ILLEGAL_DATA_ADDRESS),  # touches 37788
            (36000, 10, ExceptionCode.ILLEGAL_DATA_ADDRESS),  # nothing documented there
            (32000, 65, ExceptionCode.ILLEGAL_DATA_VALUE),  # longer than 64
        ):
            with pytest.raises(ExceptionResponse) as refused:
                await transport.read(H, address, count, unit=1)
            assert refused.value.code == code, (address, count)
        assert len(await transport.read(H, 37100, 39, unit=1)) == 39


async def test_a_scan_names_it_and_no_other_family_claims_it(site: SimulatedSite) -> None:
    async with open_transport(_bus(site)) as transport:
        await asyncio.sleep(SIM_SETTLE_S)
        found = await identify(transport, 1)
        assert found.profile == "huawei_sun2000_l1_luna"
        # The battery-less L1 profile fits too, but comes after (catalogue order).
        assert (await identify(transport, 1, HUAWEI[1:2])).profile == "huawei_sun2000_l1"
        # Neither three-phase profile does (model ID 344 is an L1).
        m_only = tuple((n, s) for n, s in HUAWEI if "_m" in n)
        assert (await identify(transport, 1, m_only)).profile is None
        for name, signature in OTHERS:
            other = await identify(transport, 1, ((name, signature),))
            assert other.profile is None, name


async def test_no_other_simulated_device_looks_like_a_huawei() -> None:
    for name, layout in SITES.items():
        if name == "huawei":
            continue
        async with (
            SimulatedSite(layout=layout, tcp=("127.0.0.1", 0), start=NOON) as other,
            open_transport(_bus(other)) as transport,
        ):
            for device in layout.devices:
                # Only the Huawei signatures are tried (a SunSpec device still names itself).
                found = await identify(transport, device.unit, HUAWEI)
                assert not (found.profile or "").startswith("huawei_"), (name, device.unit)


async def test_ems_edge_scan_waits_out_the_settle_time_and_names_it(
    site: SimulatedSite, tmp_path: Path
) -> None:
    assert scan_settle_s(BusType.TCP, 1) == scan_settle_s(BusType.TCP, 0) == SETTLE_S
    assert scan_settle_s(BusType.TCP, 7) == 0.0
    path = write_config(tmp_path, "ws://127.0.0.1:9", site.tcp_port, "huawei_scan")
    scan = await asyncio.to_thread(
        ems, "edge", "scan", "--config", str(path), "sim", "--units", "1"
    )
    assert scan.returncode == 0, scan.stderr
    said, _, pasted = scan.stdout.partition("\n\n")
    assert said.splitlines() == [
        "unit 1: huawei_sun2000_l1_luna: Huawei SUN2000 L1 with LUNA2000 "
        "(model 30000, model ID 30070, storage SOC 37760)"
    ]
    assert 'profile = "huawei_sun2000_l1_luna"' in pasted


async def test_the_inverter_reads_over_rs485_too() -> None:
    async with SimulatedSite(
        layout=LAYOUT, tcp=None, rtu=True, start=NOON, seed=5, tick_s=3600.0
    ) as rtu_site:
        rtu_site.step(300.0)
        expected = inverter_sections(rtu_site.state.sections())
        config = BusConfig("rs485", BusType.RTU, device=rtu_site.rtu_path, baudrate=115200)
        async with open_transport(config) as transport:
            reading = await Device(transport, unit=1, profile="huawei_sun2000_l1_luna").read()
    decoded = {k: dict(v) for k, v in reading.sections.items()}
    assert mismatches(L1_LUNA, expected, decoded) == []
    assert reading.transactions == 4
