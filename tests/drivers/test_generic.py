"""User-written TOML register maps: accepted as written, refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.bus import BusType
from drivers.errors import ProfileError
from drivers.planner import Hole
from drivers.profile import decode_map, encode_map
from drivers.profiles import fixed_map, get_profile
from drivers.profiles.generic import load_device_profile, load_generic
from drivers.registers import RegisterType, WordOrder
from telemetry.roles import Role

GOOD = """
name = "acme-pm3"
source = "Acme PM3 manual, table 4"
max_count = 60

[[point]]
name = "Total power"
address = 52
register_type = "input"
data_type = "float32"
target = "grid.power_w"

[[point]]
name = "Energy in"
address = 100
register_type = "holding"
data_type = "uint32"
word_order = "CDAB"
scale = 0.1
target = "grid.import_energy_wh"

[[point]]
name = "L2 volts"
address = 2
register_type = "input"
data_type = "uint16"
scale = 0.1
target = "grid.phase_voltage_v[1]"

[[point]]
name = "Fan"
address = 7
register_type = "coil"
data_type = "bit"
target = "extra.fan_on"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "meter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_map_loads_and_round_trips(tmp_path: Path) -> None:
    reg_map = load_generic(_write(tmp_path, GOOD))
    assert reg_map.name == "acme-pm3"
    assert reg_map.max_count == 60
    energy = reg_map.by_name["Energy in"]
    assert energy.word_order is WordOrder.CDAB
    assert {r.register_type for r in reg_map.plan} == {
        RegisterType.INPUT,
        RegisterType.HOLDING,
        RegisterType.COIL,
    }
    image = encode_map(
        reg_map,
        {"grid": {"power_w": -1200.5, "import_energy_wh": 123456.7}, "extra": {"fan_on": 1.0}},
    )
    # 1234567 = 0x0012D687, low word first.
    assert (image[RegisterType.HOLDING][100], image[RegisterType.HOLDING][101]) == (0xD687, 0x0012)
    decoded = decode_map(reg_map, image)
    assert decoded["grid"]["power_w"] == -1200.5
    assert decoded["grid"]["import_energy_wh"] == 123456.7
    assert decoded["extra"]["fan_on"] == 1.0
    # A per-phase list with a hole ([?, 0.0, ?]) is not reported.
    assert "phase_voltage_v" not in decoded["grid"]


def test_generic_through_the_registry(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    reg_map = fixed_map("generic", path)
    assert reg_map is not None
    assert reg_map.name == "acme-pm3"
    assert fixed_map("sunspec") is None
    with pytest.raises(ProfileError, match="profile_file"):
        fixed_map("generic")
    with pytest.raises(ProfileError, match="unknown profile 'sdm999'"):
        get_profile("sdm999")


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (
            ('data_type = "float32"', 'data_type = "float64"'),
            "point[0].data_type",
            "Input should be",
        ),
        (('register_type = "input"', 'register_type = "inputs"'), "point[0].register_type", ""),
        (("address = 52", "address = -1"), "point[0].address", "greater than or equal"),
        (("address = 52", 'address = "52"'), "point[0].address", "integer"),
        (
            ('target = "grid.power_w"', 'target = "grid.pwr_w"'),
            "point[0].target",
            "no field 'pwr_w'",
        ),
        (
            ('target = "grid.power_w"', 'target = "house.power_w"'),
            "point[0].target",
            "unknown section",
        ),
        (
            ('target = "grid.phase_voltage_v[1]"', 'target = "grid.phase_voltage_v"'),
            "point[2].target",
            "per phase",
        ),
        (
            ('target = "grid.power_w"', 'target = "grid.power_w[0]"'),
            "point[0].target",
            "single value",
        ),
        (
            ('scale = 0.1\ntarget = "grid.import', 'scale = 0\ntarget = "grid.import'),
            "point[1].scale",
            "not be 0",
        ),
        (
            ('name = "Total power"', 'name = "Total power"\ncolour = "red"'),
            "point[0].colour",
            "Extra inputs",
        ),
        (("max_count = 60", "max_count = 200"), "max_count", "less than or equal"),
        (('data_type = "bit"', 'data_type = "uint16"'), "point[3].data_type", "coils and discrete"),
    ],
)
def test_mistakes_name_their_key(
    tmp_path: Path, change: tuple[str, str], key: str, reason: str
) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ProfileError) as caught:
        load_generic(_write(tmp_path, GOOD.replace(old, new, 1)))
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"meter.toml: {key}: ")


def test_a_map_without_points_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as caught:
        load_generic(_write(tmp_path, 'name = "x"\n'))
    assert caught.value.key == "point"


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_generic(tmp_path / "missing.toml")
    with pytest.raises(ProfileError, match="invalid TOML"):
        load_generic(_write(tmp_path, "[[point]\n"))


def test_a_point_longer_than_a_request_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("max_count = 60", "max_count = 1")
    with pytest.raises(ProfileError, match="exceed the 1 one request may read"):
        load_generic(_write(tmp_path, text))


HOLE = """
[[hole]]
register_type = "input"
first = 0x0036
last = 0x003D
"""


AFTER = """
[[point]]
name = "After"
address = 0x003E
register_type = "input"
data_type = "uint16"
target = "extra.after"
"""


def _input_reads(text: str, tmp_path: Path) -> list[tuple[int, int]]:
    plan = load_generic(_write(tmp_path, text)).plan
    return sorted((r.address, r.count) for r in plan if r.register_type is RegisterType.INPUT)


def test_holes_are_read_around(tmp_path: Path) -> None:
    # 0x0036-0x003D unused between "Total power" (0x34 x 2) and "After": bridged
    # within max_gap 16, unless the device refuses them.
    assert _input_reads(GOOD + AFTER, tmp_path) == [(2, 1), (0x34, 11)]
    assert _input_reads(GOOD + AFTER + HOLE, tmp_path) == [(2, 1), (0x34, 2), (0x3E, 1)]
    reg_map = load_generic(_write(tmp_path, GOOD + AFTER + HOLE))
    assert reg_map.holes == (Hole(RegisterType.INPUT, 0x36, 0x3D),)


@pytest.mark.parametrize(
    ("hole", "key", "reason"),
    [
        (HOLE.replace("0x0036", "0x0034"), "hole[0]", "covers point 'Total power'"),
        (HOLE.replace("last = 0x003D", "last = 0x0030"), "hole[0]", "must not be below"),
        (HOLE.replace("last = 0x003D", "last = 0x10000"), "hole[0].last", "less than or equal"),
        (HOLE.replace('"input"', '"inputs"'), "hole[0].register_type", "Input should be"),
    ],
)
def test_a_bad_hole_names_its_key(tmp_path: Path, hole: str, key: str, reason: str) -> None:
    with pytest.raises(ProfileError) as caught:
        load_generic(_write(tmp_path, GOOD + hole))
    assert caught.value.key == key
    assert reason in caught.value.reason


# What a coded map can say, written in TOML: a SunSpec-style scale factor, a bit
# field, a state code, and a documented register served but never read.
MORE = """
name = "acme-inv"

[[point]]
name = "W"
address = 0
register_type = "holding"
data_type = "int16"
scale_factor = "W_SF"
target = "inverter.ac_power_w"

[[point]]
name = "W_SF"
address = 1
register_type = "holding"
data_type = "sunssf"
constant = -1

[[point]]
name = "Fan stage"
address = 2
register_type = "holding"
data_type = "bitfield16"
shift = 4
mask = 0x3
target = "extra.fan_stage"

[[point]]
name = "State"
address = 3
register_type = "holding"
data_type = "enum16"
states = { 1 = "off", 4 = "mppt", 0x7 = "fault" }
target = "inverter.state"

[[point]]
name = "Model"
address = 4
register_type = "holding"
data_type = "string"
length = 4
constant = "PM3"
"""


def test_scale_factors_bit_fields_states_and_constants(tmp_path: Path) -> None:
    reg_map = load_generic(_write(tmp_path, MORE))
    state = reg_map.by_name["State"]
    assert state.states == ((1, "off"), (4, "mppt"), (7, "fault"))
    assert [p.name for p in reg_map.needed] == ["W", "W_SF", "Fan stage", "State"]
    image = encode_map(
        reg_map, {"inverter": {"ac_power_w": 3120.0, "state": "mppt"}, "extra": {"fan_stage": 2.0}}
    )
    holding = image[RegisterType.HOLDING]
    # 3120 W at sf -1 is 31200; the stage sits in bits 4-5; "PM3" in two-byte words.
    assert [holding[a] for a in range(8)] == [31200, 0xFFFF, 0x20, 4, 0x504D, 0x3300, 0, 0]
    assert decode_map(reg_map, image) == {
        "inverter": {"ac_power_w": 3120.0, "state": "mppt"},
        "extra": {"fan_stage": 2.0},
    }


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (('scale_factor = "W_SF"', 'scale_factor = "W"'), "point[0].scale_factor", "sunssf"),
        (('constant = "PM3"\n', ""), "point[4].target", "required, unless"),
        (("constant = -1", "constant = -11"), "point[1].constant", "-10 to 10"),
        (
            ('data_type = "string"\nlength = 4', 'data_type = "uint16"\nlength = 0'),
            "point[4].constant",
            "expected a number",
        ),
        (('data_type = "bitfield16"', 'data_type = "float32"'), "point[2].mask", "integer"),
        (("mask = 0x3", "mask = 0"), "point[2].mask", "greater than or equal"),
        (('target = "inverter.state"', 'target = "extra.state"'), "point[3].states", "state"),
        (("states = { 1 = ", "states = { one = "), "point[3].states", "not an integer"),
        (('states = { 1 = "off", 4 = "mppt", 0x7 = "fault" }\n', ""), "point[3].target", "states"),
        (('constant = "PM3"', 'constant = "PM3-LONGER"'), "point[4].constant", "longer than"),
        (('constant = "PM3"', 'target = "extra.model"'), "point[4].data_type", "strings cannot"),
    ],
)
def test_more_mistakes_name_their_key(
    tmp_path: Path, change: tuple[str, str], key: str, reason: str
) -> None:
    old, new = change
    assert old in MORE
    with pytest.raises(ProfileError) as caught:
        load_generic(_write(tmp_path, MORE.replace(old, new, 1)))
    assert caught.value.key == key
    assert reason in caught.value.reason


DEVICE = """
[device]
vendor = "Acme"
models = "PM3 three-phase meter"
role = "grid"
transports = ["rtu"]
default_unit = 3
config_name = "meter"
notes = ["9600 8N1"]

[[device.signature]]
register_type = "input"
address = 52
data_type = "float32"
low = -100000.0
high = 100000.0
"""


def test_a_device_table_makes_a_catalogue_entry(tmp_path: Path) -> None:
    path = tmp_path / "acme_pm3.toml"
    path.write_text(GOOD.replace('name = "acme-pm3"\n', "") + DEVICE, encoding="utf-8")
    # As a user's generic map, the table is validated and the map read as before.
    assert load_generic(path).by_name["Total power"].address == 52
    profile = load_device_profile(path)
    assert profile.name == "acme_pm3"
    assert profile.register_map is not None
    assert profile.register_map.name == "acme_pm3"
    assert (profile.vendor, profile.role, profile.default_unit) == ("Acme", Role.GRID, 3)
    assert profile.transports == frozenset({BusType.RTU})
    assert profile.notes == ("9600 8N1",)
    assert profile.source == "Acme PM3 manual, table 4"
    assert profile.signature is not None
    assert profile.signature.description == "Acme PM3 three-phase meter"
    assert profile.signature.checks[0].address == 52


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (('role = "grid"', 'role = "house"'), "device.role", "Input should be"),
        (('transports = ["rtu"]', 'transports = ["usb"]'), "device.transports[0]", ""),
        (("default_unit = 3", "default_unit = 300"), "device.default_unit", "less than"),
        (('vendor = "Acme"\n', ""), "device.vendor", "Field required"),
        (('notes = ["9600 8N1"]', 'colour = "red"'), "device.colour", "Extra inputs"),
        (("high = 100000.0", "high = -200000.0"), "device.signature[0]", "high must not"),
        (('data_type = "float32"\nlow', 'data_type = "string"\nlow'), "device.signature[0]", ""),
    ],
)
def test_device_table_mistakes_name_their_key(
    tmp_path: Path, change: tuple[str, str], key: str, reason: str
) -> None:
    old, new = change
    assert old in DEVICE
    with pytest.raises(ProfileError) as caught:
        load_generic(_write(tmp_path, GOOD + DEVICE.replace(old, new, 1)))
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_a_shipped_map_needs_its_device_table_and_its_own_name(tmp_path: Path) -> None:
    path = tmp_path / "acme_pm3.toml"
    path.write_text(GOOD, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_device_profile(path)
    assert caught.value.key == "device"
    path.write_text(GOOD + DEVICE, encoding="utf-8")  # name = "acme-pm3", not the file's
    with pytest.raises(ProfileError) as caught:
        load_device_profile(path)
    assert caught.value.key == "name"
    bad = tmp_path / "Acme-PM3.toml"
    bad.write_text(GOOD.replace('name = "acme-pm3"\n', "") + DEVICE, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_device_profile(bad)
    assert caught.value.key == "name"
