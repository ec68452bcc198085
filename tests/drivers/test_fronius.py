"""Fronius GEN24: chains typed by hand at the register map's addresses, discovered over TCP.

Words are placed where the GEN24 SunSpec maps put them (int+SF: 103 at 40069,
120-123 at 40121/40149/40181/40227, 160 with four modules at 40253, 124 at 40343;
float: 113 at 40069 and everything after it 10 registers later), not produced by
our encoder.
"""

from __future__ import annotations

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.profiles.identify import identify
from drivers.registers import RegisterType
from drivers.transports import open_transport
from simulation.modbus_server import DeviceServer, DeviceSpec
from tests.support.modbus import float_words, text_words

H = RegisterType.HOLDING


def _gen24(float_models: bool) -> dict[int, int]:
    words: dict[int, int] = {}

    def put(address: int, *values: int) -> None:
        for i, value in enumerate(values):
            words[address + i] = value

    put(
        40000,
        0x5375,
        0x6E53,
        1,
        65,
        *text_words("Fronius", 16),
        *text_words("Symo GEN24 10.0 Plus", 16),
    )
    shift = 10 if float_models else 0
    if float_models:
        put(40069, 113, 60)
        put(40091, *float_words(2160.5))  # W (offset 22)
    else:
        put(40069, 103, 50)
        put(40083, 21605, 0xFFFF)  # W 21605, W_SF -1: 2160.5 W
    for model_id, address, length in ((120, 40121, 26), (121, 40149, 30), (122, 40181, 44)):
        put(address + shift, model_id, length)
    put(40227 + shift, 123, 24)
    mppt = 40253 + shift
    put(mppt, 160, 88, 0xFFFE, 0xFFFF, 0, 0, 0, 0, 4, 0)  # DCA_SF -2, DCV_SF -1, DCW_SF 0, N 4
    modules = {  # module: (DCA x0.01 A, DCV x0.1 V, DCW W)
        1: (512, 4021, 2059),  # "String 1"
        2: (498, 3955, 1970),  # "String 2"
        3: (1040, 4960, 515),  # "StCha 3": the battery takes 515 W
        4: (0, 4960, 0),  # "StDisCha 4"
    }
    for n, (amps, volts, watts) in modules.items():
        base = mppt + 10 + 20 * (n - 1)
        put(base, n)
        put(base + 9, amps, volts, watts)
    storage = 40343 + shift
    put(storage, 124, 24)
    put(storage + 8, 5675)  # ChaState 56.75 % (ChaState_SF -2)
    put(storage + 10, 0xFFFF, 4)  # InBatV not supported; ChaSt 4: CHARGING
    put(storage + 22, 0xFFFE)  # ChaState_SF -2
    put(storage + 26, 0xFFFF, 0)  # end
    return words


def _meter(float_models: bool) -> dict[int, int]:
    words = dict(enumerate([0x5375, 0x6E53, 1, 65, *text_words("Fronius", 16)], start=40000))
    if float_models:
        words |= {40069: 213, 40070: 124, 40195: 0xFFFF, 40196: 0}
        words |= dict(enumerate(float_words(-1500.0), start=40097))  # W (offset 28)
        words |= dict(enumerate(float_words(1_234_567.0), start=40137))  # TotWhImp (offset 68)
    else:
        words |= {40069: 203, 40070: 105, 40176: 0xFFFF, 40177: 0}
        words |= {40087: 0xFA24, 40091: 0}  # W -1500 (exporting), W_SF 0
        words |= {40115: 0x0012, 40116: 0xD687, 40123: 0}  # TotWhImp 1_234_567 Wh, SF 0
    return words


@pytest.mark.parametrize("float_models", [False, True], ids=["int+sf", "float"])
async def test_either_sunspec_model_type_reads_the_same_site(float_models: bool) -> None:
    specs = [
        DeviceSpec(1, {H: _gen24(float_models)}),
        DeviceSpec(200, {H: _meter(float_models)}),
    ]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0)) as server:
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port)
        async with open_transport(config) as transport:
            inverter = await Device(transport, unit=1, profile="fronius_gen24").read()
            meter = await Device(transport, unit=200, profile="fronius_smart_meter").read()
            named = [(await identify(transport, unit)).profile for unit in (1, 200)]
    assert named == ["fronius_gen24", "fronius_smart_meter"]
    assert inverter.section("inverter")["ac_power_w"] == 2160.5
    assert dict(inverter.section("battery")) == {
        "soc_pct": 56.75,
        "state": "charging",
        "power_w": -515.0,  # module 4 (discharge) - module 3 (charge)
        "current_a": -10.4,
        "voltage_v": 496.0,
    }
    # PV is modules 1 and 2 only: the battery's modules are not PV.
    assert inverter.section("solar")["pv_power_w"] == 2059.0 + 1970.0
    assert inverter.section("extra")["battery_charge_power_w"] == 515.0
    assert "mppt3_power_w" not in inverter.section("extra")
    assert meter.section("grid")["power_w"] == -1500.0  # SunSpec's sign: < 0 exports
    assert meter.section("grid")["import_energy_wh"] == 1_234_567.0


async def test_a_gen24_without_storage_keeps_its_trackers_as_pv() -> None:
    words = _gen24(False)
    # Two modules, no model 124: 160 is 48 registers long and the chain ends after it.
    words[40254], words[40261] = 48, 2
    words |= {40303: 0xFFFF, 40304: 0}
    async with DeviceServer([DeviceSpec(1, {H: words})], tcp=("127.0.0.1", 0)) as server:
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port)
        async with open_transport(config) as transport:
            reading = await Device(transport, unit=1, profile="fronius_gen24").read()
    assert "battery" not in reading.sections
    assert reading.section("solar")["pv_power_w"] == 2059.0 + 1970.0
