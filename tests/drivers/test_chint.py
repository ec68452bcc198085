"""Chint DTSU666: a register image typed from the manual, and the meter served over real Modbus."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.planner import ReadRequest
from drivers.profile import RegisterImage, decode_map, encode_map
from drivers.profiles import get_profile
from drivers.profiles.chint import DTSU666
from drivers.profiles.identify import identify, signatures
from drivers.registers import RegisterType
from drivers.transports import open_transport
from simulation.default_site import SERVED_MAPS, Unit, encode_site
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from tests.drivers.precision import mismatches
from tests.support.modbus import served_bus

H = RegisterType.HOLDING
NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)


def _image(typed: dict[int, tuple[int, int]]) -> RegisterImage:
    holding: dict[int, int] = {}
    for address, (high, low) in typed.items():
        holding[address], holding[address + 1] = high, low
    return {H: holding}


# Float32 words, high word first, in the manual's raw units (x0.1 V, x0.001 A,
# x0.1 W, x0.001, x0.01 Hz; kWh for the energies).
DOCUMENT_IMAGE: Final = _image(
    {
        0x101E: (0x44BE, 0x6CCD),  # ImpEp 1523.4 kWh
        0x1028: (0x450A, 0x2400),  # ExpEp 2210.25 kWh
        0x2006: (0x450F, 0xD800),  # Ua 2301.5 -> 230.15 V (the manual's own example)
        0x2008: (0x4510, 0x8000),  # Ub 2312.0 -> 231.2 V
        0x200A: (0x450F, 0xA800),  # Uc 2298.5 -> 229.85 V
        0x200C: (0x4643, 0x5000),  # Ia 12500 -> 12.5 A
        0x200E: (0x4584, 0xD000),  # Ib 4250 -> 4.25 A
        0x2010: (0x453B, 0x8000),  # Ic 3000 -> 3.0 A
        0x2012: (0xC5FD, 0xE800),  # Pt -8125 -> -812.5 W (exporting)
        0x2014: (0xC57A, 0x0000),  # Pa -4000 -> -400.0 W
        0x2016: (0xC51C, 0x4000),  # Pb -2500 -> -250.0 W
        0x2018: (0xC4CB, 0x2000),  # Pc -1625 -> -162.5 W
        0x201A: (0x44BB, 0x8000),  # Qt 1500 -> 150.0 var
        0x202A: (0x4472, 0x8000),  # PFt 970 -> 0.97
        0x2044: (0x459C, 0x5000),  # Freq 5002 -> 50.02 Hz
    }
)


def test_dtsu666_documented_values() -> None:
    sections = decode_map(DTSU666, DOCUMENT_IMAGE)
    assert sections["grid"] == {
        "import_energy_wh": pytest.approx(1_523_400.0, abs=0.1),  # float32: 1523.4000244
        "export_energy_wh": 2_210_250.0,
        "phase_voltage_v": [230.15, 231.2, 229.85],
        "phase_power_w": [-400.0, -250.0, -162.5],
        "power_w": -812.5,
        "power_factor": 0.97,
        "frequency_hz": 50.02,
        # Derived: the mean of the phase voltages and the sum of the phase currents.
        "voltage_v": pytest.approx(230.4),
        "current_a": pytest.approx(19.75),
    }
    assert sections["extra"] == {
        "grid_phase_current_l1_a": 12.5,
        "grid_phase_current_l2_a": 4.25,
        "grid_phase_current_l3_a": 3.0,
        "grid_reactive_power_var": 150.0,
    }


def test_dtsu666_plan_reads_the_energies_and_the_electricity_block() -> None:
    # 101EH-1029H; 2006H-202BH (2032H..2043H undocumented, not bridged); 2044H.
    assert DTSU666.plan == (
        ReadRequest(H, 0x101E, 12),
        ReadRequest(H, 0x2006, 38),
        ReadRequest(H, 0x2044, 2),
    )
    assert len(DTSU666.minimal_plan) == 2  # two blocks 4000 addresses apart


def test_dtsu666_catalogue_entry() -> None:
    profile = get_profile("chint_dtsu666")
    assert profile.register_map is DTSU666
    assert profile.transports == frozenset({BusType.RTU})
    assert profile.default_unit == 1
    assert profile.sections == ("grid", "extra")


def _plant_grid() -> dict[str, dict[str, object]]:
    sections = Plant("sunny", seed=3, start=NOON).state.sections()
    return {"grid": dict(sections["grid"]), "extra": dict(sections["extra"])}


@pytest.mark.parametrize("kind", ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"])
async def test_dtsu666_round_trip_through_a_served_meter(kind: str) -> None:
    plant = _plant_grid()
    image = encode_map(DTSU666, plant)
    async with (
        DeviceServer(
            [DeviceSpec.for_map(1, image, DTSU666)], tcp=("127.0.0.1", 0), rtu=True
        ) as server,
        open_transport(served_bus(kind, server)) as transport,
    ):
        reading = await Device(transport, unit=1, profile="chint_dtsu666").read()
    assert reading.transactions == len(DTSU666.plan) == 3
    assert mismatches(DTSU666, plant, reading.sections) == []
    grid = reading.sections["grid"]
    want = plant["grid"]
    assert grid["voltage_v"] == pytest.approx(want["voltage_v"], rel=1e-6)
    assert grid["current_a"] == pytest.approx(want["current_a"], rel=1e-6)


def _matching(found: Sequence[tuple[str, bool]]) -> list[str]:
    return [name for name, matched in found if matched]


async def test_dtsu666_is_identified_and_no_other_signature_matches() -> None:
    image = encode_map(DTSU666, _plant_grid())
    async with DeviceServer([DeviceSpec.for_map(7, image, DTSU666)], tcp=("127.0.0.1", 0)) as s:
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=s.tcp_port)
        async with open_transport(config) as transport:
            found = await identify(transport, 7)
            each = [
                (name, (await identify(transport, 7, [(name, sig)])).profile == name)
                for name, sig in signatures()
            ]
    assert found.profile == "chint_dtsu666"
    assert _matching(each) == ["chint_dtsu666"]


async def test_dtsu666_signature_matches_no_device_of_the_default_site() -> None:
    sections = Plant("sunny", seed=2, start=NOON).state.sections()
    images = encode_site(sections)
    specs = [DeviceSpec.for_map(int(u), images[u], SERVED_MAPS[u]) for u in Unit]
    signature = get_profile("chint_dtsu666").signature
    assert signature is not None
    async with DeviceServer(specs, tcp=("127.0.0.1", 0)) as server:
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port)
        async with open_transport(config) as transport:
            found = [
                (await identify(transport, int(u), [("chint_dtsu666", signature)])).profile
                for u in Unit
            ]
    # The inverter names itself (SunSpec); the others match nothing.
    assert found == ["sunspec", None, None, None]
