"""``ems sim --site deye`` / ``deye3`` read back over real Modbus: TCP, and RTU on a pty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from drivers.bus import Backend, BusConfig, BusType
from drivers.device import Device
from drivers.errors import ExceptionCode, ExceptionResponse
from drivers.profiles.identify import SIGNATURES, identify
from drivers.registers import RegisterType
from drivers.transports import Transport, open_transport
from simulation.deye_site import LAYOUT, LAYOUT_3P, UNIT, single_phase
from simulation.layout import SiteLayout, encode_layout
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant, Sections
from simulation.sites import SITES, site_layout
from tests.drivers.precision import mismatches

NOON = datetime(2026, 6, 21, 10, 30, tzinfo=UTC)
BUSES = ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"]


def _sections(scenario: str = "sunny", start: datetime = NOON) -> Sections:
    plant = Plant(scenario, seed=5, start=start)
    for _ in range(6):  # half an hour: the energy counters are past their first 0.1 kWh
        plant.step(300.0)
    return plant.state.sections()


def _specs(layout: SiteLayout, sections: Sections) -> list[DeviceSpec]:
    images = encode_layout(layout, sections)
    return [
        DeviceSpec.for_map(d.unit, images[d.unit], d.served, d.undefined) for d in layout.devices
    ]


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


async def _serve(
    layout: SiteLayout, sections: Sections, kind: str = "tcp"
) -> AsyncIterator[Transport]:
    specs = _specs(layout, sections)
    server = DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=kind != "tcp")
    async with server, open_transport(_bus(kind, server)) as transport:
        yield transport


def test_the_sites_are_listed() -> None:
    assert site_layout("deye") is LAYOUT
    assert site_layout("deye3") is LAYOUT_3P
    assert [(d.unit, d.profile) for d in LAYOUT.devices] == [(1, "deye_sg01lp1")]
    assert [(d.unit, d.profile) for d in LAYOUT_3P.devices] == [(1, "deye_sg04lp3")]


@pytest.mark.parametrize("kind", BUSES)
@pytest.mark.parametrize("layout", [LAYOUT, LAYOUT_3P], ids=["deye", "deye3"])
async def test_the_hybrid_reads_back_the_plant(kind: str, layout: SiteLayout) -> None:
    sections = _sections()
    device = layout.devices[0]
    async for transport in _serve(layout, sections, kind):
        reader = Device(transport, unit=UNIT, profile=device.profile)
        reading = await reader.read()
    reg_map = reader.register_map
    assert reg_map is not None
    assert reading.transactions == len(reg_map.plan) == (3 if layout is LAYOUT else 4)
    decoded = {k: dict(v) for k, v in reading.sections.items()}
    expected = device.measures(sections)
    for word in ("deye_grid_import_low_word", "deye_grid_import_high_word"):
        expected["extra"].pop(word, None)  # joined into grid.import_energy_wh, checked below
    assert mismatches(reg_map, expected, decoded) == []
    # The battery behind the inverter: the plant's own, within register resolution.
    battery, plant = reading.sections["battery"], sections["battery"]
    for name, step in (("soc_pct", 0.5), ("voltage_v", 0.005), ("current_a", 0.005)):
        assert battery[name] == pytest.approx(plant[name], abs=step + 1e-9), name
    assert battery["power_w"] == pytest.approx(plant["power_w"], abs=0.5)
    assert battery["state"] == plant["state"] or abs(float(plant["power_w"])) <= 10.0
    # Grid import (single-phase: two words 78 + 80) and the PV totals.
    assert reading.sections["grid"]["import_energy_wh"] == pytest.approx(
        sections["grid"]["import_energy_wh"], abs=50.0
    )
    assert reading.sections["solar"]["pv_power_w"] == pytest.approx(
        sections["solar"]["pv_power_w"], abs=0.5
    )
    assert reading.sections["inverter"]["state"] in ("normal", "standby", "self_check")


async def test_an_import_past_65535_tenths_uses_the_high_word() -> None:
    sections = _sections()
    grid = dict(sections["grid"])
    grid["import_energy_wh"] = 123_456_700.0  # 1234567 x 0.1 kWh: 0x12D687
    sections = {**sections, "grid": grid}
    assert single_phase(sections)["extra"]["deye_grid_import_high_word"] == 0x12
    async for transport in _serve(LAYOUT, sections):
        assert await transport.read(RegisterType.HOLDING, 78, 3, unit=UNIT) == (
            0xD687,
            round(float(grid["frequency_hz"]) * 100),
            0x0012,
        )
        reading = await Device(transport, unit=UNIT, profile="deye_sg01lp1").read()
    assert reading.sections["grid"]["import_energy_wh"] == 123_456_700.0


@pytest.mark.parametrize(("layout", "last"), [(LAYOUT, 611), (LAYOUT_3P, 709)])
async def test_refusals_as_the_tables(layout: SiteLayout, last: int) -> None:
    async for transport in _serve(layout, _sections()):
        # The identity block: device type and the serial number.
        words = await transport.read(RegisterType.HOLDING, 0, 8, unit=UNIT)
        assert words[0] == (3 if layout is LAYOUT else 5)
        serial = b"".join(w.to_bytes(2, "big") for w in words[3:8])
        assert serial == b"SIM0000001"
        # Reserved registers inside the table read 0; Modbus's 125 registers in one read
        # (a longer one the client library refuses to send).
        assert await transport.read(RegisterType.HOLDING, 120, 5, unit=UNIT) == (0,) * 5
        assert len(await transport.read(RegisterType.HOLDING, 0, 125, unit=UNIT)) == 125
        with pytest.raises(ExceptionResponse) as beyond:
            await transport.read(RegisterType.HOLDING, last, 2, unit=UNIT)
        assert beyond.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS
        # No input registers (function 04) on a Deye.
        with pytest.raises(ExceptionResponse):
            await transport.read(RegisterType.INPUT, 0, 1, unit=UNIT)


@pytest.mark.parametrize("layout", [LAYOUT, LAYOUT_3P], ids=["deye", "deye3"])
async def test_a_scan_names_the_hybrid(layout: SiteLayout) -> None:
    async for transport in _serve(layout, _sections()):
        found = await identify(transport, UNIT)
    assert found.profile == layout.devices[0].profile
    assert "Deye" in found.description


async def test_no_other_simulated_device_matches_a_deye_signature() -> None:
    deye = [(n, s) for n, s in SIGNATURES if n.startswith("deye_")]
    others = [(n, s) for n, s in SIGNATURES if not n.startswith("deye_")]
    sections = _sections()
    for layout in SITES.values():
        async for transport in _serve(layout, sections):
            for device in layout.devices:
                mine = device.profile.startswith("deye_")
                if mine:
                    # Single- and three-phase do not take each other's device either.
                    own = [(n, s) for n, s in deye if n != device.profile]
                    candidates = others + own
                else:
                    candidates = deye
                found = await identify(transport, device.unit, candidates)
                # A SunSpec device names itself (sunspec, or its maker's profile).
                assert found.profile not in dict(candidates), (layout.name, device.unit)
