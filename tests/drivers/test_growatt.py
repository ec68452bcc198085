"""Growatt V1.24 maps: hand-typed images from the document's tables, and real Modbus reads.

The images are typed as the V1.24 input tables lay registers out (32-bit values
"H" then "L", units 0.1 W, 0.1 V, 0.01 Hz, 0.1 kWh, SOC 1 %), with values such a
device shows; the round trips serve the simulated SPH, MOD TL3-X and a MID
TL3-X over TCP and RTU on a pty, with the document's limits and unreadable ranges.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from drivers.device import Device
from drivers.errors import ExceptionCode, ExceptionResponse
from drivers.planner import ReadRequest
from drivers.profile import decode_map, encode_map
from drivers.profiles.growatt import SPH, TL3X, TLX
from drivers.profiles.identify import identify
from drivers.registers import RegisterType
from drivers.transports import open_transport
from simulation.growatt_site import LAYOUT, TL3X_RANGES, documented, inverter_side
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from tests.drivers.precision import mismatches
from tests.support.modbus import served_bus, zero_image

INPUT = RegisterType.INPUT
NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)
TL3X_UNIT = 3


def test_a_hand_typed_mod_tl3_xh_image_decodes_with_protocol_signs() -> None:
    image = zero_image(
        INPUT,
        {
            3000: 0x0501,  # high byte mode 5 "PVBATOnline", low byte 1 "NormalStatus"
            3001: 0x0000,
            3002: 0xC350,  # Ppv 50000 x 0.1 W
            3003: 6124,  # Vpv1 612.4 V
            3004: 41,  # Ipv1 4.1 A
            3023: 0x0000,
            3024: 0xAFC8,  # Pac 45000 x 0.1 W
            3025: 4998,  # Fac 49.98 Hz
            3026: 2317,  # Vac1 231.7 V
            3027: 65,  # Iac1 6.5 A
            3041: 0x0000,
            3042: 0x0000,  # Ptousertotal 0
            3043: 0x0001,
            3044: 0x0BB8,  # Ptogridtotal 0x10BB8 = 68536 x 0.1 W
            3051: 0x0001,
            3052: 0x86A0,  # Eactotal 100000 x 0.1 kWh
            3069: 0x0000,
            3070: 0x04D2,  # Etouser_total 1234 x 0.1 kWh
            3093: 0xFFCE,  # Temp1 -50 x 0.1 degC (a cold morning)
            3166: 0x0201,  # mode 2 "Discharge", status 1 "Normal"
            3169: 5210,  # Vbat 52.10 V (0.01 V here)
            3171: 87,  # SOC 87 %
            3178: 0x0000,
            3179: 0x2EE0,  # Pdischr 12000 x 0.1 W
            3180: 0x0000,
            3181: 0x0000,  # Pchr 0
        },
        [(3000, 3190)],
    )
    sections = decode_map(TLX, image)
    assert sections["inverter"] == {
        "state": "normal",
        "ac_power_w": 4500.0,
        "ac_frequency_hz": 49.98,
        "ac_voltage_v": 231.7,
        "ac_current_a": 6.5,
        "energy_total_wh": 10_000_000.0,
        "temperature_c": -5.0,
    }
    assert sections["solar"]["pv_power_w"] == 5000.0
    assert sections["solar"]["pv_voltage_v"] == 612.4
    # Power to grid, never to user: exporting, so grid power is negative.
    assert sections["grid"]["power_w"] == -6853.6
    assert sections["grid"]["import_energy_wh"] == 123_400.0
    assert sections["battery"] == {
        "state": "discharging",
        "voltage_v": 52.1,
        "soc_pct": 87.0,
        "power_w": 1200.0,
    }


def test_a_hand_typed_sph_image_decodes_battery_and_meter() -> None:
    words = {
        0: 1,  # "normal"
        2: 31250,  # Ppv 3125.0 W
        35: 0,
        36: 8000,  # Pac 800.0 W
        37: 5002,
        38: 2298,
        55: 0x0000,
        56: 0x3039,  # Eactotal 12345 x 0.1 kWh
        1000: 5,
        1011: 0x0000,
        1012: 25000,  # Pcharge1 2500.0 W
        1013: 528,  # Vbat 52.8 V (0.1 V here)
        1014: 64,  # SOC
        1021: 0x0000,
        1022: 4567,  # PactouserTotal 456.7 W
        1040: 235,  # battery 23.5 degC
        1046: 0x0001,
        1047: 0x86A0,  # Etouser_total 100000 x 0.1 kWh
        1108: 3342,
        1109: 3318,
    }
    image = zero_image(INPUT, words, [(0, 124), (1000, 1124)])
    sections = decode_map(SPH, image)
    assert sections["inverter"]["state"] == "normal"
    assert sections["inverter"]["ac_power_w"] == 800.0
    assert sections["inverter"]["energy_total_wh"] == 1_234_500.0
    assert sections["solar"]["pv_power_w"] == 3125.0
    assert sections["grid"] == {
        "import_energy_wh": 10_000_000.0,
        "export_energy_wh": 0.0,
        "power_w": 456.7,  # power to user: importing
    }
    assert sections["battery"] == {
        "voltage_v": 52.8,
        "soc_pct": 64.0,
        "temperature_c": 23.5,
        "cell_voltage_max_v": 3.342,
        "cell_voltage_min_v": 3.318,
        "power_w": -2500.0,  # charge power: charging is negative
        "state": "charging",
    }
    assert sections["extra"]["system_work_mode"] == 5.0


def test_a_mode_in_a_registers_high_byte_encodes_back_there() -> None:
    image = encode_map(TLX, {"battery": {"state": "charging"}, "inverter": {"state": "fault"}})
    assert image[INPUT][3166] == 0x0100
    assert image[INPUT][3000] == 3
    assert decode_map(TLX, image)["battery"]["state"] == "charging"


def test_each_poll_is_two_reads_of_at_most_125_registers() -> None:
    assert TLX.plan == (ReadRequest(INPUT, 3000, 94), ReadRequest(INPUT, 3166, 20))
    assert SPH.plan == (ReadRequest(INPUT, 0, 94), ReadRequest(INPUT, 1000, 110))
    assert TL3X.plan == (ReadRequest(INPUT, 0, 94),)
    for reg_map in (TLX, SPH, TL3X):
        assert reg_map.plan == reg_map.minimal_plan
        assert all(r.count <= 125 for r in reg_map.plan)


def _specs() -> tuple[list[DeviceSpec], dict[int, dict[str, dict[str, object]]]]:
    """The growatt site's two devices and a MID TL3-X, encoded from one plant state."""
    plant = Plant("sunny", seed=4, start=NOON).state.sections()
    shown = {d.unit: d.measures(plant) for d in LAYOUT.devices}
    shown[TL3X_UNIT] = inverter_side(plant, idle_state="waiting")
    maps = {**{d.unit: d.served for d in LAYOUT.devices}, TL3X_UNIT: TL3X}
    images = {d.unit: d.encode(plant) for d in LAYOUT.devices}
    images[TL3X_UNIT] = encode_map(TL3X, shown[TL3X_UNIT])
    documented(TL3X_RANGES)(images[TL3X_UNIT])
    specs = [DeviceSpec.for_map(unit, images[unit], maps[unit]) for unit in maps]
    return specs, shown


def _signed(shown: dict[str, dict[str, object]], plus: str, minus: str) -> float:
    extra = shown["extra"]
    a, b = extra[plus], extra[minus]
    assert isinstance(a, float)
    assert isinstance(b, float)
    return a - b


@pytest.mark.parametrize("kind", ["tcp", "rtu-pymodbus", "rtu-minimalmodbus"])
async def test_growatt_inverters_read_over_the_wire(kind: str) -> None:
    specs, shown = _specs()
    async with (
        DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=True) as server,
        open_transport(served_bus(kind, server)) as transport,
    ):
        readings = {
            unit: await Device(transport, unit=unit, profile=name).read()
            for unit, name in ((1, "growatt_sph"), (2, "growatt_tlx"), (3, "growatt_tl3x"))
        }
    sph, tlx, tl3x = readings[1], readings[2], readings[3]
    assert (sph.transactions, tlx.transactions, tl3x.transactions) == (2, 2, 1)
    assert mismatches(SPH, shown[1], sph.sections) == []
    assert mismatches(TLX, shown[2], tlx.sections) == []
    assert mismatches(TL3X, shown[3], tl3x.sections) == []
    # The signed powers made from Growatt's pairs, within a register's 0.1 W.
    for section, plus, minus in (
        ("grid", "grid_import_power_w", "grid_export_power_w"),
        ("battery", "battery_discharge_power_w", "battery_charge_power_w"),
    ):
        got = sph.section(section)["power_w"]
        assert isinstance(got, float)
        assert abs(got - _signed(shown[1], plus, minus)) <= 0.1


@pytest.mark.parametrize("kind", ["tcp", "rtu-minimalmodbus"])
async def test_reads_outside_the_documented_ranges_are_refused(kind: str) -> None:
    specs, _ = _specs()
    async with (
        DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=True) as server,
        open_transport(served_bus(kind, server)) as transport,
    ):
        assert len(await transport.read(INPUT, 0, 125, unit=1)) == 125
        assert len(await transport.read(INPUT, 3000, 125, unit=2)) == 125
        for unit, address, count in (
            (1, 124, 2),
            (1, 1250, 1),
            (2, 0, 1),
            (2, 3374, 2),
            (3, 250, 1),
        ):
            with pytest.raises(ExceptionResponse) as caught:
                await transport.read(INPUT, address, count, unit=unit)
            assert caught.value.code is ExceptionCode.ILLEGAL_DATA_ADDRESS, (unit, address)


async def test_each_growatt_family_is_told_by_its_own_registers() -> None:
    specs, _ = _specs()
    async with (
        DeviceServer(specs, tcp=("127.0.0.1", 0)) as server,
        open_transport(served_bus("tcp", server)) as transport,
    ):
        found = {unit: (await identify(transport, unit)).profile for unit in (1, 2, 3)}
    assert found == {1: "growatt_sph", 2: "growatt_tlx", 3: "growatt_tl3x"}


async def test_requests_to_a_growatt_are_850_ms_apart() -> None:
    # V1.24 section 3: "Wait for minimum 850ms to send a new CMD after last CMD".
    specs, _ = _specs()
    async with (
        DeviceServer(specs, tcp=("127.0.0.1", 0)) as server,
        open_transport(served_bus("tcp", server)) as transport,
    ):
        sph = Device(transport, unit=1, profile="growatt_sph")
        started = time.monotonic()
        first = await sph.read()
        second = await sph.read()  # the gap holds from one poll to the next, too
        elapsed = time.monotonic() - started
        # The same plan read as a bare map is not paced.
        bare = await Device(transport, unit=1, profile=SPH).read()
    assert (first.transactions, second.transactions) == (2, 2)
    assert first.duration_s >= 0.85
    assert elapsed >= 3 * 0.85
    assert bare.duration_s < 0.85
