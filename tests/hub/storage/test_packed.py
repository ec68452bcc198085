"""Numbers packed as decimal digits (hub/storage/packed.py), on plain values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.storage.packed import (
    pack_extra,
    pack_numbers,
    read_varint,
    unpack_extra,
    unpack_numbers,
    varint,
)

AWKWARD = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    10.0,
    100.0,
    1e15,
    -1e15,
    123456789012345.6,
    0.1,
    0.30000000000000004,
    1e-7,
    1.5e-300,
    5e-324,  # the smallest subnormal double
    1e16,
    1e22,
    1.7976931348623157e308,  # the largest double
    6.142306328127996,
    3.316,
    229.6284,
]


def test_awkward_values_come_back_exactly() -> None:
    back = unpack_numbers(pack_numbers(AWKWARD))
    # repr tells -0.0 from 0.0 and shows every digit.
    assert [repr(v) for v in back] == [repr(v) for v in AWKWARD]
    assert all(type(v) is float for v in back)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=300))
def test_every_finite_double_comes_back_exactly(values: list[float]) -> None:
    back = unpack_numbers(pack_numbers(values))
    assert [repr(v) for v in back] == [repr(v) for v in values]


def test_a_registers_value_takes_half_a_byte_per_character() -> None:
    # "3.316,0,53,-1.5" is 15 characters: 8 bytes, the last half byte padding.
    packed = pack_numbers([3.316, 0.0, 53.0, -1.5])
    assert packed == bytes.fromhex("3a316c0c53cb1a5f")
    assert unpack_numbers(packed) == [3.316, 0.0, 53.0, -1.5]


def test_integers_come_back_as_floats() -> None:
    assert [repr(v) for v in unpack_numbers(pack_numbers([312, -7, 0]))] == ["312.0", "-7.0", "0.0"]


def test_nothing_packs_to_nothing() -> None:
    assert pack_numbers([]) == b""
    assert unpack_numbers(b"") == []


@pytest.mark.parametrize(
    "values",
    [[math.nan], [1.0, math.inf], [-math.inf], [True], [None], ["1"], [[1.0]], [{"a": 1.0}]],
    ids=["nan", "inf", "-inf", "bool", "none", "string", "list", "dict"],
)
def test_what_is_not_a_finite_number_is_refused(values: list[object]) -> None:
    with pytest.raises(ValueError, match="not"):
        pack_numbers(values)  # type: ignore[arg-type]


def test_an_unencodable_object_is_refused_as_a_value_error() -> None:
    with pytest.raises(ValueError, match="not numbers"):
        pack_numbers([object()])  # type: ignore[list-item]


def test_a_broken_blob_is_refused() -> None:
    # 0xcc: two commas, no number between them.
    with pytest.raises(ValueError, match="not packed numbers"):
        unpack_numbers(bytes.fromhex("1ccc"))


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**40])
def test_varints_round_trip(value: int) -> None:
    encoded = varint(value)
    assert read_varint(encoded + b"\xff") == (value, len(encoded))
    assert len(encoded) == max(1, math.ceil(value.bit_length() / 7))


def test_a_varint_is_never_negative_nor_cut_short() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        varint(-1)
    with pytest.raises(ValueError, match="past the end"):
        read_varint(b"\x80\x80")


def test_extra_is_its_lists_id_then_its_values() -> None:
    blob = pack_extra(300, [3.316, -0.0])
    assert blob[:2] == varint(300)
    names_id, values = unpack_extra(blob)
    assert names_id == 300
    assert [repr(v) for v in values] == ["3.316", "-0.0"]
    assert unpack_extra(pack_extra(1, [])) == (1, [])
