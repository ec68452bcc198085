"""User-written TOML register maps: accepted as written, refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import ProfileError
from drivers.planner import Hole
from drivers.profile import decode_map, encode_map
from drivers.profiles import fixed_map, get_profile
from drivers.profiles.generic import load_generic
from drivers.registers import RegisterType, WordOrder

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
