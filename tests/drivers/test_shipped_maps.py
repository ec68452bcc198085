"""The families shipped only as TOML maps: catalogue entries, document images, served meters.

Carlo Gavazzi EM24-DIN and EM340 (INT32 least significant word first) and
Eastron SDM72D-M-2 (float32) are read from drivers/profiles/maps/*.toml. They
are tested as the coded families are: register images typed from the vendors'
tables, plans, and a round trip through a served meter over TCP and RTU.
"""

from __future__ import annotations

from typing import Final

import pytest

from drivers.bus import BusType
from drivers.device import Device
from drivers.errors import ExceptionCode, ExceptionResponse
from drivers.planner import ReadRequest
from drivers.profile import RegisterImage, RegisterMap, decode_map, encode_map
from drivers.profiles import PROFILES, get_profile
from drivers.profiles.identify import identify, signatures
from drivers.registers import RegisterType, WordOrder
from drivers.transports import open_transport
from simulation.modbus_server import DeviceServer, DeviceSpec
from telemetry.roles import Role
from tests.drivers.precision import mismatches
from tests.support.modbus import served_bus

IR = RegisterType.INPUT
SHIPPED: Final = ("carlo_gavazzi_em24", "carlo_gavazzi_em340", "eastron_sdm72")
SIBLINGS: Final = {"eastron_sdm72": ("eastron_sdm630", "eastron_sdm120")}


def _map(name: str) -> RegisterMap:
    reg_map = get_profile(name).register_map
    assert reg_map is not None
    return reg_map


def _input(words: dict[int, tuple[int, ...]]) -> RegisterImage:
    table: dict[int, int] = {}
    for address, values in words.items():
        for i, word in enumerate(values):
            table[address + i] = word
    return {IR: table}


def test_the_shipped_maps_are_catalogue_entries() -> None:
    for name in SHIPPED:
        profile = PROFILES[name]
        assert profile.role is Role.GRID
        assert profile.config_name == "meter"
        assert profile.signature is not None
        assert profile.register_map is not None
        assert profile.register_map.name == name
        assert profile.source == profile.register_map.source
    assert get_profile("carlo_gavazzi_em24").transports == frozenset({BusType.RTU})
    assert get_profile("carlo_gavazzi_em340").transports == frozenset({BusType.RTU, BusType.TCP})
    assert get_profile("eastron_sdm72").vendor == "Eastron"
    assert _map("carlo_gavazzi_em24").by_name["W sys"].word_order is WordOrder.CDAB
    # The SDM72 is tried before the SDM630, whose registers it shares.
    names = list(PROFILES)
    assert names.index("eastron_sdm72") < names.index("eastron_sdm630")


# EM24-DIN: INT32 LSW first (low word at the lower address), weights x0.1 V,
# x0.001 A, x0.1 W; INT16 PF x0.001 and Hz x0.1; energies x0.1 kWh.
EM24_WORDS: Final = {
    0x0000: (0x08FD, 0x0000),  # V L1-N 2301 -> 230.1 V
    0x0002: (0x0908, 0x0000),  # V L2-N 2312 -> 231.2 V
    0x0004: (0x08FA, 0x0000),  # V L3-N 2298 -> 229.8 V
    0x000C: (0x30D4, 0x0000),  # A L1 12500 -> 12.5 A
    0x000E: (0x109A, 0x0000),  # A L2 4250 -> 4.25 A
    0x0010: (0x0BB8, 0x0000),  # A L3 3000 -> 3.0 A
    0x0012: (0xF060, 0xFFFF),  # W L1 -4000 -> -400.0 W
    0x0014: (0xF63C, 0xFFFF),  # W L2 -2500 -> -250.0 W
    0x0016: (0xF9A7, 0xFFFF),  # W L3 -1625 -> -162.5 W
    0x0024: (0x0900, 0x0000),  # V L-N sys 2304 -> 230.4 V
    0x0028: (0xE043, 0xFFFF),  # W sys -8125 -> -812.5 W (exporting)
    0x002C: (0x05DC, 0x0000),  # var sys 1500 -> 150.0 var
    0x0035: (0x03CA,),  # PF sys 970 -> 0.97
    0x0036: (0x0000,),  # phase sequence L1-L2-L3
    0x0037: (0x01F4,),  # Hz 500 -> 50.0 Hz
    0x0042: (0x3B82, 0x0000),  # kWh (+) TOT 15234 -> 1523.4 kWh
    0x005C: (0xE240, 0x0001),  # kWh (-) TOT 123456 -> 12345.6 kWh
}
EM24_IMAGE: Final = _input(EM24_WORDS)
EM24_GRID: Final = {
    "phase_voltage_v": [230.1, 231.2, 229.8],
    "phase_power_w": [-400.0, -250.0, -162.5],
    "voltage_v": 230.4,
    "power_w": -812.5,
    "power_factor": 0.97,
    "frequency_hz": 50.0,
    "import_energy_wh": 1_523_400.0,
    "export_energy_wh": 12_345_600.0,
}
EM24_EXTRA: Final = {
    "grid_phase_current_l1_a": 12.5,
    "grid_phase_current_l2_a": 4.25,
    "grid_phase_current_l3_a": 3.0,
    "grid_reactive_power_var": 150.0,
}


def test_em24_documented_values() -> None:
    sections = decode_map(_map("carlo_gavazzi_em24"), EM24_IMAGE)
    assert sections == {"grid": EM24_GRID, "extra": EM24_EXTRA}


def _em340_image() -> RegisterImage:
    # The same values at the EM340's addresses: PF sys 0031h, phase sequence
    # 0032h, Hz 0033h, kWh (+) TOT 0034h, kWh (-) TOT 004Eh.
    moved = {0x0035: 0x0031, 0x0036: 0x0032, 0x0037: 0x0033, 0x0042: 0x0034, 0x005C: 0x004E}
    return _input({moved.get(address, address): words for address, words in EM24_WORDS.items()})


def test_em340_documented_values() -> None:
    sections = decode_map(_map("carlo_gavazzi_em340"), _em340_image())
    assert sections == {"grid": EM24_GRID, "extra": EM24_EXTRA}


# SDM72D-M-2: float32 input registers, high word first.
SDM72_IMAGE: Final = _input(
    {
        0x0000: (0x4366, 0x199A),  # 30001 phase 1 volts 230.1
        0x0002: (0x4367, 0x3333),  # 30003 phase 2 volts 231.2
        0x0004: (0x4365, 0xCCCD),  # 30005 phase 3 volts 229.8
        0x0006: (0x4148, 0x0000),  # 30007 phase 1 current 12.5
        0x0008: (0x4088, 0x0000),  # 30009 phase 2 current 4.25
        0x000A: (0x4040, 0x0000),  # 30011 phase 3 current 3.0
        0x000C: (0xC3C8, 0x0000),  # 30013 phase 1 power -400.0
        0x000E: (0xC37A, 0x0000),  # 30015 phase 2 power -250.0
        0x0010: (0xC322, 0x8000),  # 30017 phase 3 power -162.5
        0x0034: (0xC44B, 0x2000),  # 30053 total system power -812.5
        0x003E: (0x3F78, 0x51EC),  # 30063 total power factor 0.97
        0x0046: (0x4248, 0x147B),  # 30071 frequency 50.02
        0x0048: (0x44BE, 0x6CCD),  # 30073 import kWh 1523.4
        0x004A: (0x450A, 0x2400),  # 30075 export kWh 2210.25
    }
)


def test_sdm72_documented_values() -> None:
    sections = decode_map(_map("eastron_sdm72"), SDM72_IMAGE)
    grid = sections["grid"]
    assert grid["phase_voltage_v"] == pytest.approx([230.1, 231.2, 229.8])
    assert grid["phase_power_w"] == [-400.0, -250.0, -162.5]
    assert grid["power_w"] == -812.5
    assert grid["power_factor"] == pytest.approx(0.97)
    assert grid["frequency_hz"] == pytest.approx(50.02)
    assert grid["import_energy_wh"] == pytest.approx(1_523_400.0, abs=0.1)
    assert grid["export_energy_wh"] == 2_210_250.0
    assert sections["extra"] == {
        "grid_phase_current_l1_a": 12.5,
        "grid_phase_current_l2_a": 4.25,
        "grid_phase_current_l3_a": 3.0,
    }


def test_plans_at_the_devices_limits() -> None:
    # EM24: 50 words a request; 0000h-002Dh, 0035h-0043h, 005Ch-005Dh.
    assert _map("carlo_gavazzi_em24").plan == (
        ReadRequest(IR, 0x0000, 46),
        ReadRequest(IR, 0x0035, 15),
        ReadRequest(IR, 0x005C, 2),
    )
    assert len(_map("carlo_gavazzi_em24").minimal_plan) == 2
    assert _map("carlo_gavazzi_em340").plan == (
        ReadRequest(IR, 0x0000, 50),
        ReadRequest(IR, 0x0033, 3),
        ReadRequest(IR, 0x004E, 2),
    )
    assert len(_map("carlo_gavazzi_em340").minimal_plan) == 2
    # SDM72: 30001-30076 in one request of 76 registers (Eastron: 80 at most).
    assert _map("eastron_sdm72").plan == (ReadRequest(IR, 0x0000, 76),)


SUB_METER: Final = {
    "grid": {
        "power_w": 2412.5,
        "phase_power_w": [804.1, 804.2, 804.2],
        "phase_voltage_v": [231.0, 229.5, 230.2],
        "voltage_v": 230.2,
        "power_factor": 0.995,
        "frequency_hz": 49.98,
        "import_energy_wh": 7_654_300.0,
        "export_energy_wh": 12_300.0,
    },
    "extra": {
        "grid_phase_current_l1_a": 3.481,
        "grid_phase_current_l2_a": 3.504,
        "grid_phase_current_l3_a": 3.493,
        "grid_reactive_power_var": -41.5,
    },
}


@pytest.mark.parametrize("kind", ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"])
async def test_shipped_maps_round_trip_through_served_meters(kind: str) -> None:
    units = {name: unit for unit, name in enumerate(SHIPPED, start=11)}
    specs = [
        DeviceSpec.for_map(unit, encode_map(_map(name), SUB_METER), _map(name))
        for name, unit in units.items()
    ]
    async with (
        DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=True) as server,
        open_transport(served_bus(kind, server)) as transport,
    ):
        for name, unit in units.items():
            reading = await Device(transport, unit=unit, profile=name).read()
            assert reading.transactions == len(_map(name).plan), name
            assert mismatches(_map(name), SUB_METER, reading.sections) == [], name
            if kind != "tcp":
                continue  # identification is tested over TCP, as in test_identify
            found = await identify(transport, unit)
            assert found.profile == name
            matching = [
                other
                for other, signature in signatures()
                if (await identify(transport, unit, [(other, signature)])).profile
            ]
            # An SDM72 answers the SDM630's and SDM120's registers too (the same
            # 30001-30076): its own signature, tried first, tells it apart.
            assert matching == [name, *SIBLINGS.get(name, ())], f"unit {unit}: {matching}"


async def test_a_read_longer_than_fifty_words_is_refused_by_a_served_em24() -> None:
    em24 = _map("carlo_gavazzi_em24")
    spec = DeviceSpec.for_map(1, encode_map(em24, SUB_METER), em24)
    async with (
        DeviceServer([spec], tcp=("127.0.0.1", 0)) as server,
        open_transport(served_bus("tcp", server)) as transport,
    ):
        assert len(await transport.read(IR, 0, 50, unit=1)) == 50
        with pytest.raises(ExceptionResponse) as refused:
            await transport.read(IR, 0, 51, unit=1)
    assert refused.value.code is ExceptionCode.ILLEGAL_DATA_VALUE
