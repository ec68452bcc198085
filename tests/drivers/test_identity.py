"""Device identity: decoding typed register words, and reading every simulated site over TCP."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.errors import ExceptionResponse, ProfileError
from drivers.identity import (
    DeviceIdentity,
    IdentityField,
    code_point,
    decode_identity,
    identity_map,
    identity_number,
    identity_text,
    model_name,
    number_point,
    text_point,
)
from drivers.profile import encode_map, target
from drivers.profiles import get_profile, goodwe, sma, sungrow, sunspec
from drivers.profiles.generic import load_device_profile
from drivers.registers import DataType, RegisterType, WordOrder
from drivers.transports import open_transport
from simulation import goodwe_site
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from simulation.runner import SimulatedSite
from simulation.sites import SITES
from telemetry.health import DeviceIdentityReport
from tests.drivers.test_generic import DEVICE, GOOD
from tests.support.modbus import served_bus, text_words, words32

H = RegisterType.HOLDING
NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)


def test_a_text_is_trimmed_of_nuls_and_spaces_at_both_ends() -> None:
    assert identity_text(text_words("SIM-0001", 16)) == "SIM-0001"
    # Space padded (some devices), and a leading NUL.
    assert identity_text((0x2020, *text_words("AB12 ", 4))) == "AB12"
    assert identity_text((0x0041, 0x4200)) == "AB"
    # An odd length: the last register's low byte is the padding.
    assert identity_text((0x4142, 0x4300)) == "ABC"


@pytest.mark.parametrize(
    "words",
    [
        (0, 0, 0, 0),  # unset: SunSpec's "not implemented" string
        (0x2020, 0x2020),  # spaces only
        (0xFFFF,) * 8,  # an erased flash
        (0x4142, 0x0043),  # a NUL between characters
        (0x41C3, 0xA900),  # a byte above 0x7E
        (0x4109, 0x4200),  # a control character
    ],
)
def test_garbage_gives_no_text(words: tuple[int, ...]) -> None:
    assert identity_text(words) is None


def test_a_catalogue_vendor_outside_printable_ascii_is_left_out() -> None:
    """A TOML map's ``[device]`` vendor is the user's: the wire takes printable ASCII only."""
    assert DeviceIdentity(serial_number="7").with_manufacturer("Électrique SA").as_dict() == {
        "serial_number": "7"
    }
    assert DeviceIdentity().with_manufacturer("  Acme \x00").manufacturer == "Acme"
    assert len(DeviceIdentity().with_manufacturer("A" * 100).manufacturer) == 64
    # What reaches the wire is what the health frame's model accepts.
    long_text = identity_text(text_words("x" * 40, 20) + text_words("y" * 40, 20))
    assert long_text is not None
    assert DeviceIdentityReport(serial_number=long_text).serial_number == long_text


def test_a_number_is_shown_in_decimal_and_unset_gives_none() -> None:
    assert identity_number(DataType.UINT32, words32(20_123_456), WordOrder.ABCD) == "20123456"
    assert identity_number(DataType.UINT32, (0xFFFF, 0xFFFF), WordOrder.ABCD) is None
    assert identity_number(DataType.UINT32, (0, 0), WordOrder.ABCD) is None


def test_a_model_code_shows_by_its_documented_name_and_an_unknown_one_as_the_number() -> None:
    assert model_name(sungrow.DEVICE_TYPE_CODES, 0x0E03) == "SH10RT"
    assert model_name(sungrow.DEVICE_TYPE_CODES, 0x0E13) == "SH10RT-20"
    assert model_name(sungrow.DEVICE_TYPE_CODES, 0x0D0E) == "SH4.6RS"
    assert model_name(sungrow.DEVICE_TYPE_CODES, 0x0D2A) == str(0x0D2A)  # listed by neither
    assert model_name(sma.DEVICE_TYPE_CODES, 9347) == "STP8.0-3AV-40"
    assert model_name(sma.DEVICE_TYPE_CODES, 9486) == "SI5.0H-13"
    assert model_name(sma.DEVICE_TYPE_CODES, 9999) == "9999"
    # Every Sungrow code lies in the SH range the scan signature accepts.
    assert all(
        sungrow.DEVICE_TYPE_LOW <= code <= sungrow.DEVICE_TYPE_HIGH
        for code in sungrow.DEVICE_TYPE_CODES
    )


def test_a_code_point_decodes_to_the_name_the_number_or_nothing() -> None:
    reg_map = identity_map(
        "test",
        "typed here",
        (code_point(IdentityField.MODEL, H, 10, DataType.UINT32, sma.DEVICE_TYPE_CODES),),
    )

    def model(value: int) -> str:
        return decode_identity(reg_map, {H: dict(zip((10, 11), words32(value), strict=True))}).model

    assert model(9474) == "SI4.4M-13"
    assert model(9100) == "9100"
    assert model(sma.STATUS_NAN) == ""  # TI 3.5.7: NaN, not available
    assert model(0xFFFFFFFF) == ""  # unset
    assert model(0) == ""


def test_the_sunspec_common_model_decodes_from_typed_words() -> None:
    """model_1.json: Mn at offset 2, Md 18, Vr 42, SN 50 from the model's ID register."""
    reg_map = sunspec.common_identity(40002)
    assert [(p.address, p.count) for p in reg_map.points] == [
        (40004, 16),
        (40020, 16),
        (40044, 8),
        (40052, 16),
    ]
    table = dict.fromkeys(range(40004, 40068), 0)
    for address, text, length in (
        (40004, "Fronius", 16),
        (40020, "Symo GEN24 10.0 Plus", 16),
        (40036, "opt-ignored", 8),
        (40044, "1.34.6-1", 8),
        (40052, "28123456", 16),
    ):
        table.update(zip(range(address, address + length), text_words(text, length), strict=True))
    identity = decode_identity(reg_map, {H: table})
    assert identity == DeviceIdentity("Fronius", "Symo GEN24 10.0 Plus", "28123456", "1.34.6-1")
    # One request for the four: offsets 2-65.
    assert [(r.address, r.count) for r in reg_map.plan] == [(40004, 64)]


def test_an_image_with_gaps_and_garbage_gives_what_is_readable() -> None:
    reg_map = identity_map(
        "test",
        "typed here",
        (
            text_point(IdentityField.MODEL, H, 100, 4),
            text_point(IdentityField.SERIAL_NUMBER, H, 104, 4),
            number_point(IdentityField.FIRMWARE_VERSION, H, 110, DataType.UINT16),
        ),
    )
    image = {H: {100: 0xFFFF, 101: 0xFFFF, 102: 0xFFFF, 103: 0xFFFF}}
    image[H].update(zip(range(104, 108), text_words("SN42", 4), strict=True))
    # 110 was not read: no firmware, no error.
    assert decode_identity(reg_map, image) == DeviceIdentity(serial_number="SN42")
    assert decode_identity(reg_map, {}) == DeviceIdentity()
    assert not DeviceIdentity().known
    assert DeviceIdentity(serial_number="x").with_manufacturer("Acme").as_dict() == {
        "manufacturer": "Acme",
        "serial_number": "x",
    }


def test_an_identity_map_feeds_only_identity_fields() -> None:
    colour = dataclasses.replace(
        text_point(IdentityField.MODEL, H, 0, 1), target=target("extra.colour")
    )
    with pytest.raises(ValueError, match="colour"):
        identity_map("x", "y", (colour,))


# What each simulated device serves as its identity (its served map's constants).
EXPECTED = {
    ("default", "inverter"): DeviceIdentity("EMS Switchboard", "SimInverter", "SIM-0001", "1.0"),
    ("default", "meter"): DeviceIdentity("Eastron", serial_number="20123456"),
    ("multi", "meter_main"): DeviceIdentity("Eastron", serial_number="20123456"),
    ("multi", "inverter_east"): DeviceIdentity(
        "EMS Switchboard", "SimInverter", "SIM-EAST-01", "1.0"
    ),
    ("multi", "inverter_west"): DeviceIdentity(
        "EMS Switchboard", "SimInverter", "SIM-WEST-01", "1.0"
    ),
    ("multi", "heat_pump"): DeviceIdentity("Eastron", serial_number="21000001"),
    ("multi", "ev_charger"): DeviceIdentity("Eastron", serial_number="21000002"),
    ("meters", "grid_meter"): DeviceIdentity("Chint", firmware_version="204"),
    ("meters", "inverter_meter"): DeviceIdentity("Eastron", serial_number="72000003"),
    ("huawei", "inverter"): DeviceIdentity("Huawei", "SUN2000-5KTL-L1", "EMSSIM0001"),
    ("goodwe", "inverter"): DeviceIdentity("GoodWe", "GW5K-ET", "95000ETU000SIM01"),
    ("deye", "inverter"): DeviceIdentity("Deye", serial_number="SIM0000001"),
    ("deye3", "inverter"): DeviceIdentity("Deye", serial_number="SIM0000001"),
    ("solax", "inverter"): DeviceIdentity("SolaX", serial_number="H4502AEMS00001"),
    ("sungrow", "inverter"): DeviceIdentity("Sungrow", "SH5K-20", "A2312345678"),
    ("growatt", "pv_inverter"): DeviceIdentity(
        "Growatt", serial_number="GRT0SIM001", firmware_version="TJ1.0"
    ),
    ("victron", "gx"): DeviceIdentity("Victron Energy", serial_number="c0619ab0e5e5"),
    ("sma", "inverter"): DeviceIdentity("SMA", "STP8.0-3AV-40", "3012345678"),
    ("sma", "battery"): DeviceIdentity("SMA", "SI4.4M-13", "3012345679"),
    ("jkbms", "bms"): DeviceIdentity("JK (JiKong)", "JK_PB2A16S20P", firmware_version="19.05"),
    ("solaredge", "inverter"): DeviceIdentity(
        "SolarEdge", "SE10K-RWS", "7E0123456", "0004.0020.0036"
    ),
    ("fronius", "inverter"): DeviceIdentity(
        "Fronius", "Symo GEN24 10.0 Plus", "SIM-GEN24-01", "1.34.6-1"
    ),
    ("fronius", "meter"): DeviceIdentity("Fronius", "Smart Meter TS 65A-3", "SIM-TS65A-01"),
}


@pytest.mark.parametrize("site_name", sorted(SITES))
async def test_every_simulated_device_reports_its_identity_over_tcp(site_name: str) -> None:
    layout = SITES[site_name]
    async with (
        SimulatedSite(
            layout=layout, tcp=("127.0.0.1", 0), start=NOON, seed=5, tick_s=3600.0
        ) as site,
        open_transport(served_bus("tcp", site)) as transport,
    ):
        for served in layout.devices:
            device = Device(transport, unit=served.unit, profile=served.profile)
            await device.read()
            before = transport.transactions
            identity = await device.read_identity()
            profile = get_profile(served.profile)
            want = EXPECTED.get((site_name, served.name))
            if want is None:
                # No identity registers: the catalogue's vendor only, no request.
                assert profile.identity is None
                assert profile.register_map is not None
                assert identity == DeviceIdentity(manufacturer=profile.vendor)
                assert transport.transactions == before
            else:
                assert identity == want, (site_name, served.name)
                assert device.identity_tried


async def test_an_identity_reads_over_a_pty_too() -> None:
    layout = SITES["deye"]
    async with (
        SimulatedSite(
            layout=layout, tcp=("127.0.0.1", 0), rtu=True, start=NOON, seed=5, tick_s=3600.0
        ) as site,
        open_transport(served_bus("rtu", site)) as transport,
    ):
        device = Device(transport, unit=layout.devices[0].unit, profile="deye_sg01lp1")
        await device.read()
        assert (await device.read_identity()).serial_number == "SIM0000001"


@pytest.fixture
async def goodwe_without_device_info() -> AsyncIterator[DeviceServer]:
    """A GoodWe that answers its running data but refuses 35003 (no 4.1 block)."""
    sections = Plant("sunny", seed=1, start=NOON).state.sections()
    image = encode_map(goodwe.ET, goodwe_site.LAYOUT.devices[0].measures(sections))
    spec = DeviceSpec.for_map(goodwe.GOODWE_UNIT, image, goodwe.ET, undefined=0xFFFF)
    async with DeviceServer([spec], tcp=("127.0.0.1", 0)) as served:
        yield served


async def test_a_refused_identity_read_raises_and_polling_still_reads(
    goodwe_without_device_info: DeviceServer,
) -> None:
    bus = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=goodwe_without_device_info.tcp_port)
    async with open_transport(bus) as transport:
        device = Device(transport, unit=goodwe.GOODWE_UNIT, profile="goodwe_et")
        await device.read()
        with pytest.raises(ExceptionResponse):
            await device.read_identity()
        assert device.identity_tried
        reading = await device.read()
        assert reading.section("grid")


IDENTITY_TOML = """
[[device.identity]]
field = "serial_number"
register_type = "holding"
address = 0xFC00
data_type = "uint32"

[[device.identity]]
field = "model"
register_type = "holding"
address = 0x0100
data_type = "string"
length = 4
"""


def test_a_toml_device_table_gives_identity_registers(tmp_path: Path) -> None:
    path = tmp_path / "acme_pm3.toml"
    text = GOOD.replace('name = "acme-pm3"\n', "") + DEVICE + IDENTITY_TOML
    path.write_text(text, encoding="utf-8")
    profile = load_device_profile(path)
    assert profile.identity is not None
    assert [(r.register_type, r.address, r.count) for r in profile.identity.plan] == [
        (H, 0x0100, 4),
        (H, 0xFC00, 2),
    ]
    image = {
        H: {
            0xFC00: 0x0133,
            0xFC01: 0x2D5E,
            **dict(zip(range(0x100, 0x104), text_words("PM3-X", 4), strict=True)),
        }
    }
    assert decode_identity(profile.identity, image) == DeviceIdentity(
        model="PM3-X", serial_number=str(0x01332D5E)
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (('data_type = "uint32"', 'data_type = "float32"'), "uint16 or uint32"),
        (('data_type = "uint32"', 'data_type = "uint32"\nlength = 2'), "string only"),
        (("length = 4\n", ""), "its length"),
        (
            (
                'register_type = "holding"\naddress = 0xFC00',
                'register_type = "coil"\naddress = 0xFC00',
            ),
            "not coils",
        ),
        (('field = "model"', 'field = "serial_number"'), "each field once"),
        (('field = "model"', 'field = "colour"'), "Input should be"),
    ],
)
def test_toml_identity_mistakes_name_their_key(
    tmp_path: Path, change: tuple[str, str], reason: str
) -> None:
    old, new = change
    assert old in IDENTITY_TOML
    path = tmp_path / "acme_pm3.toml"
    text = GOOD.replace('name = "acme-pm3"\n', "") + DEVICE + IDENTITY_TOML.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_device_profile(path)
    assert caught.value.key.startswith("device")
    assert reason in caught.value.reason


def test_the_em340_reads_its_serial_number_at_5000h() -> None:
    """EM24 Ethernet / EM340: 7 registers of ASCII at 5000h (no simulated EM340 serves it)."""
    reg_map = get_profile("carlo_gavazzi_em340").identity
    assert reg_map is not None
    assert [(r.register_type, r.address, r.count) for r in reg_map.plan] == [(H, 0x5000, 7)]
    words = text_words("KZ1234567890W", 7)  # 13 characters, NUL padded
    image = {H: dict(zip(range(0x5000, 0x5007), words, strict=True))}
    assert decode_identity(reg_map, image) == DeviceIdentity(serial_number="KZ1234567890W")
