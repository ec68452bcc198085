"""``ems sim --site sma`` read back over real Modbus TCP, answering as SMA devices do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.errors import ExceptionCode, ExceptionResponse
from drivers.profiles.identify import SIGNATURES, identify
from drivers.registers import RegisterType
from drivers.transports import Transport, open_transport
from simulation.layout import SiteLayout, encode_layout
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant, Sections
from simulation.runner import SimulatedSite
from simulation.sites import SITES, site_layout
from simulation.sma_site import LAYOUT, PV_UNIT, STORAGE_UNIT
from tests.drivers.precision import mismatches

NOON = datetime(2026, 6, 21, 9, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 6, 21, 23, 0, tzinfo=UTC)


def _sections(start: datetime = NOON, scenario: str = "sunny") -> Sections:
    plant = Plant(scenario, seed=3, start=start)
    for _ in range(6):  # half an hour: every energy counter is past its first Wh
        plant.step(300.0)
    return plant.state.sections()


def _specs(layout: SiteLayout, sections: Sections) -> list[DeviceSpec]:
    images = encode_layout(layout, sections)
    return [
        DeviceSpec.for_map(d.unit, images[d.unit], d.served, d.undefined) for d in layout.devices
    ]


async def _transport(sections: Sections) -> AsyncIterator[Transport]:
    async with DeviceServer(_specs(LAYOUT, sections), tcp=("127.0.0.1", 0)) as server:
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port)
        async with open_transport(config) as transport:
            yield transport


@pytest.fixture
async def noon() -> AsyncIterator[tuple[Transport, Sections]]:
    sections = _sections()
    async for transport in _transport(sections):
        yield transport, sections


def test_the_site_is_listed() -> None:
    assert site_layout("sma") is LAYOUT
    assert [(d.unit, d.profile) for d in LAYOUT.devices] == [
        (3, "sma_inverter"),
        (4, "sma_storage"),
    ]


@pytest.mark.parametrize("scenario", ["sunny", "night", "battery_full"])
async def test_both_devices_read_back_the_plant(scenario: str) -> None:
    sections = _sections(scenario=scenario)
    async for transport in _transport(sections):
        for device in LAYOUT.devices:
            reader = Device(transport, unit=device.unit, profile=device.profile)
            reading = await reader.read()
            assert reader.register_map is not None
            decoded = {k: dict(v) for k, v in reading.sections.items()}
            expected = device.measures(sections)
            # 30843's size only feeds battery.current_a (its sign is undocumented).
            expected.get("extra", {}).pop("battery_current_a", None)
            assert mismatches(reader.register_map, expected, decoded) == [], device.unit
            assert reading.transactions == len(reader.register_map.plan)


async def test_the_readings_add_up_to_the_plant(noon: tuple[Transport, Sections]) -> None:
    transport, sections = noon
    pv = (await Device(transport, unit=PV_UNIT, profile="sma_inverter").read()).sections
    storage = (await Device(transport, unit=STORAGE_UNIT, profile="sma_storage").read()).sections
    plant_battery = sections["battery"]
    assert isinstance(plant_battery["power_w"], float)
    assert isinstance(plant_battery["current_a"], float)
    # W resolution; the current: 30843's size (mA) with the direction of 31393/31395.
    assert storage["battery"]["power_w"] == pytest.approx(plant_battery["power_w"], abs=1.0)
    assert storage["battery"]["current_a"] == pytest.approx(plant_battery["current_a"], abs=0.001)
    assert storage["grid"]["power_w"] == pytest.approx(sections["grid"]["power_w"], abs=1.0)
    assert pv["solar"]["pv_power_w"] == pytest.approx(sections["solar"]["pv_power_w"], abs=1.0)
    # Both inverters' AC output is the plant's inverter output.
    both = pv["inverter"]["ac_power_w"] + storage["inverter"]["ac_power_w"]
    assert both == pytest.approx(sections["inverter"]["ac_power_w"], abs=2.0)


async def test_at_night_the_pv_inverter_gives_nan_and_reads_off() -> None:
    async for transport in _transport(_sections(MIDNIGHT)):
        assert await transport.read(RegisterType.INPUT, 30775, 2, unit=PV_UNIT) == (0x8000, 0)
        # Condition 303 "Off".
        assert await transport.read(RegisterType.INPUT, 30201, 2, unit=PV_UNIT) == (0, 303)
        reading = await Device(transport, unit=PV_UNIT, profile="sma_inverter").read()
        assert reading.sections["inverter"]["state"] == "off"
        assert reading.sections["inverter"]["ac_power_w"] == 0.0
        assert reading.sections["solar"]["pv_power_w"] == 0.0
        assert "pv_voltage_v" not in reading.sections["solar"]
        # The PV inverter has no meter: its grid registers are NaN, nothing is decoded.
        assert await transport.read(RegisterType.INPUT, 30865, 4, unit=PV_UNIT) == (
            0x8000,
            0,
            0x8000,
            0,
        )
        assert "grid" not in reading.sections


async def test_function_03_reads_what_04_reads(noon: tuple[Transport, Sections]) -> None:
    transport, _ = noon
    for unit in (PV_UNIT, STORAGE_UNIT):
        holding = await transport.read(RegisterType.HOLDING, 30775, 30, unit=unit)
        assert holding == await transport.read(RegisterType.INPUT, 30775, 30, unit=unit)


async def test_undefined_registers_read_nan_and_a_read_of_none_is_refused(
    noon: tuple[Transport, Sections],
) -> None:
    transport, _ = noon
    # 30203-30210 hold nothing the device defines: exception 02 (TI 3.5.5).
    with pytest.raises(ExceptionResponse) as refused:
        await transport.read(RegisterType.INPUT, 30203, 8, unit=PV_UNIT)
    assert refused.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS
    # With the condition at 30201 in the block, the rest reads as NaN.
    words = await transport.read(RegisterType.INPUT, 30201, 10, unit=PV_UNIT)
    assert words == (0, 307, *([0xFFFF] * 8))
    with pytest.raises(ExceptionResponse):
        await transport.read(RegisterType.INPUT, 30203, 2, unit=STORAGE_UNIT)


async def test_the_64_bit_counters_third_party_readers_use(
    noon: tuple[Transport, Sections],
) -> None:
    transport, _ = noon
    # 30513 "Total yield" U64 (as evcc reads it) holds 30529's count; 30517 30535's.
    for unit, wide, narrow in (
        (PV_UNIT, 30513, 30529),
        (PV_UNIT, 30517, 30535),
        (STORAGE_UNIT, 31397, 30595),
        (STORAGE_UNIT, 31401, 30597),
    ):
        words = await transport.read(RegisterType.HOLDING, wide, 4, unit=unit)
        high, low = await transport.read(RegisterType.INPUT, narrow, 2, unit=unit)
        assert words == (0, 0, high, low)
        if wide == 30513:
            assert (high << 16) | low > 0  # half an hour of sun


async def test_an_idle_battery_has_the_status_nan() -> None:
    sections = _sections()
    battery = dict(sections["battery"])
    battery["state"] = "idle"
    sections = {**sections, "battery": battery}
    async for transport in _transport(sections):
        assert await transport.read(RegisterType.INPUT, 30955, 2, unit=STORAGE_UNIT) == (
            0x00FF,
            0xFFFD,
        )
        reading = await Device(transport, unit=STORAGE_UNIT, profile="sma_storage").read()
        assert "state" not in reading.sections["battery"]


async def test_a_scan_names_both_devices(noon: tuple[Transport, Sections]) -> None:
    transport, _ = noon
    pv = await identify(transport, PV_UNIT)
    storage = await identify(transport, STORAGE_UNIT)
    assert (pv.profile, storage.profile) == ("sma_inverter", "sma_storage")
    assert "8001" in pv.description
    assert "8007" in storage.description


async def test_no_other_simulated_device_matches_an_sma_signature() -> None:
    sma = [(n, s) for n, s in SIGNATURES if n.startswith("sma_")]
    others = [(n, s) for n, s in SIGNATURES if not n.startswith("sma_")]
    sections = _sections()
    for layout in SITES.values():
        async with DeviceServer(_specs(layout, sections), tcp=("127.0.0.1", 0)) as server:
            config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port)
            async with open_transport(config) as transport:
                for device in layout.devices:
                    mine = device.profile.startswith("sma_")
                    candidates = others if mine else sma
                    found = await identify(transport, device.unit, candidates)
                    # A SunSpec device names itself (sunspec, or its maker's profile).
                    assert found.profile not in dict(candidates), (layout.name, device.unit)


async def test_ems_sim_serves_the_sma_site_as_sma_devices_answer() -> None:
    # Through the runner (what 'ems sim --site sma' starts): the sparse answers.
    async with SimulatedSite(layout=LAYOUT, tcp=("127.0.0.1", 0), start=NOON, seed=4) as site:
        site.step(1.0)
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=site.tcp_port)
        async with open_transport(config) as transport:
            words = await transport.read(RegisterType.INPUT, 30201, 4, unit=PV_UNIT)
            assert words[2:] == (0xFFFF, 0xFFFF)
            with pytest.raises(ExceptionResponse):
                await transport.read(RegisterType.INPUT, 30203, 2, unit=PV_UNIT)
            reading = await Device(transport, unit=STORAGE_UNIT, profile="sma_storage").read()
            assert reading.sections["battery"]["soc_pct"] == pytest.approx(
                site.state.battery.soc_pct, abs=0.5
            )
