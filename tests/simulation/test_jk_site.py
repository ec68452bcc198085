"""``ems sim --site jkbms`` read back over real Modbus (TCP, RTU on a pty), byte addresses too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.bus import Backend, BusConfig, BusType
from drivers.device import Device
from drivers.errors import ExceptionResponse
from drivers.profiles.generic import load_generic
from drivers.profiles.identify import SIGNATURES, identify
from drivers.registers import RegisterType
from drivers.transports import Transport, open_transport
from simulation.jk_site import LAYOUT, UNIT, bms
from simulation.layout import SiteLayout, encode_layout
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant, Sections
from simulation.sites import SITES, site_layout
from tests.drivers.precision import mismatches

NOON = datetime(2026, 6, 21, 10, 30, tzinfo=UTC)
BUSES = ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"]
H = RegisterType.HOLDING


def _sections(scenario: str = "sunny") -> Sections:
    plant = Plant(scenario, seed=7, start=NOON)
    for _ in range(3):
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
    server = DeviceServer(_specs(layout, sections), tcp=("127.0.0.1", 0), rtu=kind != "tcp")
    async with server, open_transport(_bus(kind, server)) as transport:
        yield transport


def test_the_site_is_listed() -> None:
    assert site_layout("jkbms") is LAYOUT
    assert [(d.unit, d.profile, d.role.value) for d in LAYOUT.devices] == [(1, "jk_pb", "battery")]


@pytest.mark.parametrize("kind", BUSES)
@pytest.mark.parametrize("scenario", ["sunny", "night"])
async def test_the_bms_reads_back_the_pack(kind: str, scenario: str) -> None:
    sections = _sections(scenario)
    async for transport in _serve(LAYOUT, sections, kind):
        reader = Device(transport, unit=UNIT, profile="jk_pb")
        reading = await reader.read()
    assert reader.register_map is not None
    assert reading.transactions == 2
    decoded = {k: dict(v) for k, v in reading.sections.items()}
    expected = bms(sections)
    expected["extra"].pop("jk_power_size_w")  # becomes battery.power_w, checked below
    assert mismatches(reader.register_map, expected, decoded) == []
    battery, plant = reading.sections["battery"], sections["battery"]
    assert battery["current_a"] == pytest.approx(plant["current_a"], abs=0.0005)
    assert battery["power_w"] == pytest.approx(plant["power_w"], abs=0.1)
    assert battery["voltage_v"] == pytest.approx(plant["voltage_v"], abs=0.0005)
    assert battery["soc_pct"] == round(float(plant["soc_pct"]))
    assert battery["cell_voltage_max_v"] == pytest.approx(plant["cell_voltage_max_v"], abs=0.0005)
    if abs(float(plant["current_a"])) > 0.05:
        assert battery["state"] == plant["state"]


async def test_reads_start_at_a_byte() -> None:
    sections = _sections()
    volts_mv = round(float(sections["battery"]["voltage_v"]) * 1000)
    async for transport in _serve(LAYOUT, sections):
        # Pack voltage at 0x1200 + 0x90, two words, high first.
        voltage = await transport.read(H, 0x1290, 2, unit=UNIT)
        assert voltage == (volts_mv >> 16, volts_mv & 0xFFFF)
        # The word after it is the next value's, the power at 0x1294: a read of four
        # words from 0x1290 gives both, back to back.
        power = await transport.read(H, 0x1294, 2, unit=UNIT)
        assert await transport.read(H, 0x1290, 4, unit=UNIT) == voltage + power
        # SOC alone, from its byte at 0x12A7: the low byte of 0x12A6 and the high of 0x12A8.
        soc_word = (await transport.read(H, 0x12A6, 1, unit=UNIT))[0]
        assert soc_word == round(float(sections["battery"]["soc_pct"]))
        odd = (await transport.read(H, 0x12A7, 1, unit=UNIT))[0]
        assert odd >> 8 == soc_word & 0xFF
        # Settings 0x1000 + 0x6C: 16 cells; device information 0x1400: the model.
        assert await transport.read(H, 0x106C, 2, unit=UNIT) == (0, 16)
        words = await transport.read(H, 0x1400, 8, unit=UNIT)
        model = b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\0")
        assert model == b"JK_PB2A16S20P"
        # Charge and discharge MOSFETs on (0xC0, 0xC1).
        assert await transport.read(H, 0x12C0, 1, unit=UNIT) == (0x0101,)


async def test_refusals() -> None:
    async for transport in _serve(LAYOUT, _sections()):
        with pytest.raises(ExceptionResponse):
            await transport.read(H, 0x0FFE, 2, unit=UNIT)  # before the settings
        with pytest.raises(ExceptionResponse):
            await transport.read(H, 0x1500, 2, unit=UNIT)  # past the device information
        with pytest.raises(ExceptionResponse):
            await transport.read(RegisterType.INPUT, 0x1200, 1, unit=UNIT)  # function 03 only


async def test_a_scan_names_the_bms() -> None:
    async for transport in _serve(LAYOUT, _sections()):
        found = await identify(transport, UNIT)
    assert found.profile == "jk_pb"


async def test_no_other_simulated_device_matches_the_jk_signature() -> None:
    jk = [(n, s) for n, s in SIGNATURES if n == "jk_pb"]
    others = [(n, s) for n, s in SIGNATURES if n != "jk_pb"]
    sections = _sections()
    for layout in SITES.values():
        async for transport in _serve(layout, sections):
            for device in layout.devices:
                candidates = others if device.profile == "jk_pb" else jk
                found = await identify(transport, device.unit, candidates)
                # A SunSpec device names itself (sunspec, or its maker's profile).
                assert found.profile not in dict(candidates), (layout.name, device.unit)


# The same BMS described in TOML (docs/configuration.md): points at field + offset / 2.
JK_TOML = """
name = "jk-pb-subset"
source = "JK BMS RS485 Modbus V1.1, running data 0x1200"
byte_tables = [0x1000, 0x1200, 0x1400]

[[point]]
name = "Pack voltage"
address = 0x1248               # 0x1200 + 0x90 / 2
register_type = "holding"
data_type = "uint32"
scale = 0.001
target = "battery.voltage_v"

[[point]]
name = "Pack current"
address = 0x124C               # 0x1200 + 0x98 / 2
register_type = "holding"
data_type = "int32"
scale = -0.001
target = "battery.current_a"

[[point]]
name = "SOC"
address = 0x1253               # 0x1200 + 0xA6 / 2, SOC in the low byte
register_type = "holding"
data_type = "uint16"
mask = 0xFF
target = "battery.soc_pct"
"""


async def test_a_generic_toml_map_reads_the_byte_addresses(tmp_path: Path) -> None:
    path = tmp_path / "jk.toml"
    path.write_text(JK_TOML, encoding="utf-8")
    generic = load_generic(path)
    assert [generic.wire_address(r.address) for r in generic.plan] == [0x1290]
    async for transport in _serve(LAYOUT, _sections()):
        mine = await Device(transport, unit=UNIT, profile=generic).read()
        builtin = await Device(transport, unit=UNIT, profile="jk_pb").read()
    assert mine.transactions == 1
    for name in ("voltage_v", "current_a", "soc_pct"):
        assert mine.sections["battery"][name] == builtin.sections["battery"][name]
