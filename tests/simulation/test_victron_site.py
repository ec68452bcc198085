"""``ems sim --site victron`` read back over real Modbus TCP: one GX, a unit id per service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device, scan
from drivers.errors import ExceptionCode, ExceptionResponse
from drivers.profiles.identify import SIGNATURES, identify
from drivers.registers import RegisterType
from drivers.transports import Transport, open_transport
from edge.compose import compose
from simulation.layout import SiteLayout, encode_layout
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant, Sections
from simulation.runner import SimulatedSite
from simulation.sites import SITES, site_layout
from simulation.victron_site import (
    BATTERY_UNIT,
    LAYOUT,
    SOLARCHARGER_UNIT,
    SYSTEM_UNIT,
    VEBUS_UNIT,
)
from telemetry.roles import Role
from tests.drivers.precision import mismatches

NOON = datetime(2026, 6, 21, 9, 30, tzinfo=UTC)


def _sections(scenario: str = "sunny") -> Sections:
    plant = Plant(scenario, seed=3, start=NOON)
    for _ in range(6):  # half an hour: every energy counter is past its first Wh
        plant.step(300.0)
    return plant.state.sections()


def _specs(layout: SiteLayout, sections: Sections) -> list[DeviceSpec]:
    images = encode_layout(layout, sections)
    return [
        DeviceSpec.for_map(d.unit, images[d.unit], d.served, d.undefined) for d in layout.devices
    ]


async def _transport(sections: Sections) -> AsyncIterator[Transport]:
    async with DeviceServer(
        _specs(LAYOUT, sections),
        tcp=("127.0.0.1", 0),
        absent_unit_code=LAYOUT.absent_unit_code,
        absent_unit_addresses=LAYOUT.absent_unit_addresses,
    ) as server:
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port)
        async with open_transport(config) as transport:
            yield transport


@pytest.fixture
async def gx() -> AsyncIterator[tuple[Transport, Sections]]:
    sections = _sections()
    async for transport in _transport(sections):
        yield transport, sections


def test_the_site_is_listed() -> None:
    assert site_layout("victron") is LAYOUT
    assert [(d.unit, d.profile) for d in LAYOUT.devices] == [
        (100, "victron_system"),
        (227, "victron_vebus"),
        (226, "victron_solarcharger"),
        (225, "victron_battery"),
    ]


@pytest.mark.parametrize("scenario", ["sunny", "night", "battery_full"])
async def test_every_service_reads_back_the_plant(scenario: str) -> None:
    sections = _sections(scenario)
    async for transport in _transport(sections):
        for device in LAYOUT.devices:
            reader = Device(transport, unit=device.unit, profile=device.profile)
            reading = await reader.read()
            assert reader.register_map is not None
            decoded = {k: dict(v) for k, v in reading.sections.items()}
            assert mismatches(reader.register_map, device.measures(sections), decoded) == [], (
                device.unit
            )
            assert reading.transactions == len(reader.register_map.plan)


async def test_the_site_adds_up_with_the_protocols_signs(gx: tuple[Transport, Sections]) -> None:
    transport, sections = gx
    values = {}
    for device in LAYOUT.devices:
        reading = await Device(transport, unit=device.unit, profile=device.profile).read()
        values[device.role] = reading.sections
    reading = compose(values).sections
    plant_battery, plant_grid = sections["battery"], sections["grid"]
    assert isinstance(plant_battery["power_w"], float)
    assert isinstance(plant_grid["power_w"], float)
    # Victron counts the battery > 0 charging, the protocol > 0 discharging.
    assert reading["battery"]["power_w"] == pytest.approx(plant_battery["power_w"], abs=1.0)
    assert reading["battery"]["state"] == plant_battery["state"]
    assert values[Role.GRID]["battery"]["power_w"] == pytest.approx(
        plant_battery["power_w"], abs=1.0
    )
    assert reading["grid"]["power_w"] == pytest.approx(plant_grid["power_w"], abs=3.0)
    # The Multi's output less input (10 W steps) is the plant's inverter power.
    assert reading["inverter"]["ac_power_w"] == pytest.approx(
        sections["inverter"]["ac_power_w"], abs=10.0
    )
    assert reading["solar"]["pv_power_w"] == pytest.approx(sections["solar"]["pv_power_w"], abs=0.1)


async def test_each_service_answers_only_at_its_unit_id(gx: tuple[Transport, Sections]) -> None:
    transport, _ = gx
    # 843 "Battery State of Charge (System)" at unit 100, not at the BMS's unit id.
    (soc,) = await transport.read(RegisterType.HOLDING, 843, 1, unit=SYSTEM_UNIT)
    assert 0 < soc <= 100
    with pytest.raises(ExceptionResponse):
        await transport.read(RegisterType.HOLDING, 843, 1, unit=BATTERY_UNIT)
    with pytest.raises(ExceptionResponse):
        await transport.read(RegisterType.HOLDING, 266, 1, unit=SYSTEM_UNIT)
    # 266 "State of charge" (scalefactor 10) at the BMS.
    (tenths,) = await transport.read(RegisterType.HOLDING, 266, 1, unit=BATTERY_UNIT)
    assert tenths / 10 == pytest.approx(soc, abs=1.0)


async def test_reads_of_registers_the_list_does_not_give_are_refused(
    gx: tuple[Transport, Sections],
) -> None:
    transport, _ = gx
    # Older firmware's reserved gap at unit 100, and 332-1281 at a battery service.
    for unit, address, count in ((SYSTEM_UNIT, 820, 10), (BATTERY_UNIT, 300, 40)):
        with pytest.raises(ExceptionResponse) as refused:
            await transport.read(RegisterType.HOLDING, address, count, unit=unit)
        assert refused.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS
    # Around the gaps every listed register answers; those not given read 0.
    words = await transport.read(RegisterType.HOLDING, 808, 19, unit=SYSTEM_UNIT)
    assert words[:6] == (0,) * 6  # no AC-coupled PV in this plant


async def test_a_unit_id_with_no_service_gets_gateway_path_unavailable(
    gx: tuple[Transport, Sections],
) -> None:
    transport, _ = gx
    for unit in (1, 3, 224, 247):
        with pytest.raises(ExceptionResponse) as refused:
            await transport.read(RegisterType.HOLDING, 840, 1, unit=unit)
        assert refused.value.code is ExceptionCode.GATEWAY_PATH_UNAVAILABLE
    with pytest.raises(ExceptionResponse) as beyond:
        await transport.read(RegisterType.HOLDING, 6000, 1, unit=1)
    assert beyond.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS
    # A scan does not take the gateway's refusal for a device.
    assert await scan(transport, (1, 100, 101, 225, 226, 227, 228)) == (100, 225, 226, 227)


async def test_function_04_reads_what_03_reads(gx: tuple[Transport, Sections]) -> None:
    transport, _ = gx
    for unit, address, count in (
        (SYSTEM_UNIT, 840, 5),
        (VEBUS_UNIT, 3, 59),
        (SOLARCHARGER_UNIT, 771, 20),
        (BATTERY_UNIT, 258, 52),
    ):
        holding = await transport.read(RegisterType.HOLDING, address, count, unit=unit)
        assert holding == await transport.read(RegisterType.INPUT, address, count, unit=unit)
    with pytest.raises(ExceptionResponse):
        await transport.read(RegisterType.INPUT, 827, 1, unit=SYSTEM_UNIT)


async def test_a_scan_names_each_service(gx: tuple[Transport, Sections]) -> None:
    transport, _ = gx
    found = {d.unit: (await identify(transport, d.unit)).profile for d in LAYOUT.devices}
    assert found == {d.unit: d.profile for d in LAYOUT.devices}


async def test_no_other_simulated_device_matches_a_victron_signature() -> None:
    victron = [(n, s) for n, s in SIGNATURES if n.startswith("victron_")]
    others = [(n, s) for n, s in SIGNATURES if not n.startswith("victron_")]
    sections = _sections()
    for layout in SITES.values():
        async with DeviceServer(_specs(layout, sections), tcp=("127.0.0.1", 0)) as server:
            config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port)
            async with open_transport(config) as transport:
                for device in layout.devices:
                    if device.profile.startswith("victron_"):
                        # Nor does another service's signature match it.
                        mine = [(n, s) for n, s in victron if n != device.profile]
                        candidates = others + mine
                    else:
                        candidates = victron
                    found = await identify(transport, device.unit, candidates)
                    # A SunSpec device names itself (sunspec, or its maker's profile).
                    assert found.profile not in dict(candidates), (layout.name, device.unit)


async def test_ems_sim_serves_the_gx_with_its_gateway_answers() -> None:
    # Through the runner (what 'ems sim --site victron' starts).
    async with SimulatedSite(layout=LAYOUT, tcp=("127.0.0.1", 0), start=NOON, seed=4) as site:
        site.step(1.0)
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=site.tcp_port)
        async with open_transport(config) as transport:
            with pytest.raises(ExceptionResponse) as refused:
                await transport.read(RegisterType.HOLDING, 840, 1, unit=1)
            assert refused.value.code is ExceptionCode.GATEWAY_PATH_UNAVAILABLE
            reading = await Device(transport, unit=SYSTEM_UNIT, profile="victron_system").read()
            assert reading.sections["battery"]["soc_pct"] == pytest.approx(
                site.state.battery.soc_pct, abs=0.5
            )
