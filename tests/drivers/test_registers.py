"""Data types, word orders and SunSpec's "not implemented" markers, on plain words."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.profile import Point, RegisterMap, decode_point
from drivers.registers import (
    DataType,
    EncodingError,
    RegisterType,
    WordOrder,
    decode_value,
    encode_value,
    float32_decimal,
    is_not_implemented,
    not_implemented_words,
    register_count,
)


@pytest.mark.parametrize(
    ("data_type", "words", "expected"),
    [
        (DataType.UINT16, (0xFFFE,), 65534),
        (DataType.INT16, (0xFFFE,), -2),
        (DataType.INT16, (0x7FFF,), 32767),
        (DataType.SUNSSF, (0xFFFD,), -3),
        (DataType.UINT32, (0x0001, 0x86A0), 100_000),
        (DataType.INT32, (0xFFFF, 0xFFFE), -2),
        (DataType.ACC32, (0x007B, 0xF408), 8_123_400),
        # IEEE 754: 0x43668000 is 230.5, 0xC4548000 is -850.0.
        (DataType.FLOAT32, (0x4366, 0x8000), 230.5),
        (DataType.FLOAT32, (0xC454, 0x8000), -850.0),
        (DataType.STRING, (0x5375, 0x6E53), "SunS"),
        (DataType.STRING, (0x4163, 0x6D65, 0x0000, 0x0000), "Acme"),
    ],
)
def test_decode_high_word_first(
    data_type: DataType, words: tuple[int, ...], expected: object
) -> None:
    assert decode_value(data_type, words, WordOrder.ABCD) == expected


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        # IEEE 754 binary32: 0x43663333 is 230.1999969482422, the float32 nearest 230.2.
        ((0x4366, 0x3333), "230.2"),
        ((0x4365, 0xA0DF), "229.6284"),  # 229.62840270996094
        ((0xC485, 0xA99A), "-1069.3"),  # -1069.300048828125
        ((0x3F7A, 0xE148), "0.98"),  # 0.9800000190734863
        ((0x4247, 0xF5C3), "49.99"),  # 49.9900016784668
        ((0x4B80, 0x0001), "16777218.0"),  # 2**24 + 2: no shorter decimal is that float32
        ((0x0000, 0x0001), "1e-45"),  # the smallest subnormal, 1.401298464324817e-45
        ((0x7F7F, 0xFFFF), "3.4028235e+38"),  # the largest finite float32
        ((0x8000, 0x0000), "-0.0"),
    ],
)
def test_float32_decodes_to_its_shortest_decimal(words: tuple[int, int], expected: str) -> None:
    decoded = decode_value(DataType.FLOAT32, words, WordOrder.ABCD)
    assert repr(decoded) == expected
    assert encode_value(DataType.FLOAT32, decoded, WordOrder.ABCD) == words


@given(st.integers(min_value=0, max_value=0xFFFF_FFFF))
def test_every_float32_decodes_to_the_shortest_decimal_of_the_same_bits(bits: int) -> None:
    words = (bits >> 16, bits & 0xFFFF)
    decoded = decode_value(DataType.FLOAT32, words, WordOrder.ABCD)
    assert isinstance(decoded, float)
    (exact,) = struct.unpack(">f", bits.to_bytes(4, "big"))
    if math.isnan(exact):
        assert math.isnan(decoded)
        return
    assert struct.pack(">f", decoded) == bits.to_bytes(4, "big")
    digits = len(repr(abs(decoded)).split("e")[0].replace(".", "").strip("0"))
    shorter = f"{decoded:.{max(digits - 1, 1)}g}"
    if digits > 1:
        assert struct.pack(">f", float(shorter)) != bits.to_bytes(4, "big")


def test_float32_decimal_keeps_what_is_not_a_number() -> None:
    assert math.isnan(float32_decimal(math.nan))
    assert float32_decimal(math.inf) == math.inf
    assert float32_decimal(-math.inf) == -math.inf


@pytest.mark.parametrize(
    ("data_type", "scale", "words", "expected"),
    [
        (DataType.UINT16, 0.1, (2301,), "230.1"),  # 2301 * 0.1 is 230.10000000000002
        (DataType.INT16, 0.01, (0xFFF9,), "-0.07"),  # -7 * 0.01 is -0.07 exactly as printed
        (DataType.UINT32, 0.001, (0xFFFF, 0xFFFF), "4294967.295"),
        (DataType.UINT16, 0.1, (3,), "0.3"),  # 3 * 0.1 is 0.30000000000000004
        (DataType.FLOAT32, 1000.0, (0x4145, 0x851F), "12345.0"),  # 12.345 kWh in Wh
        (DataType.FLOAT32, -1.0, (0x4366, 0x3333), "-230.2"),
    ],
)
def test_a_scaled_register_decodes_to_the_shortest_decimal_of_its_step(
    data_type: DataType, scale: float, words: tuple[int, ...], expected: str
) -> None:
    point = Point("p", 0, RegisterType.HOLDING, data_type, scale=scale)
    reg_map = RegisterMap("test", "test", (point,))
    image = {RegisterType.HOLDING: dict(enumerate(words))}
    assert repr(decode_point(reg_map, point, image)) == expected


@pytest.mark.parametrize(
    ("order", "words"),
    [
        (WordOrder.ABCD, (0x0001, 0x86A0)),
        (WordOrder.CDAB, (0x86A0, 0x0001)),  # EPEver: L then H
        (WordOrder.BADC, (0x0100, 0xA086)),
        (WordOrder.DCBA, (0xA086, 0x0100)),
    ],
)
def test_word_orders_of_one_value(order: WordOrder, words: tuple[int, int]) -> None:
    assert decode_value(DataType.UINT32, words, order) == 100_000
    assert encode_value(DataType.UINT32, 100_000, order) == words


@pytest.mark.parametrize(
    ("data_type", "value"),
    [
        (DataType.INT16, -32768),
        (DataType.UINT16, 65535),
        (DataType.INT32, -123456789),
        (DataType.UINT32, 4_000_000_000),
        (DataType.FLOAT32, 0.98),
        (DataType.STRING, "SIM-0001"),
    ],
)
@pytest.mark.parametrize("order", list(WordOrder))
def test_encode_then_decode_is_identity(
    data_type: DataType, value: int | float | str, order: WordOrder
) -> None:
    words = encode_value(data_type, value, order, length=8)
    assert len(words) == register_count(data_type, 8)
    decoded = decode_value(data_type, words, order)
    if isinstance(value, float):
        assert decoded == pytest.approx(value, rel=1e-7)
    else:
        assert decoded == value


@pytest.mark.parametrize(
    ("data_type", "value"),
    [(DataType.INT16, 40000), (DataType.UINT16, -1), (DataType.UINT16, 1.5)],
)
def test_values_that_do_not_fit_are_refused(data_type: DataType, value: float) -> None:
    with pytest.raises(EncodingError):
        encode_value(data_type, value, WordOrder.ABCD)


def test_string_longer_than_its_registers_is_refused() -> None:
    with pytest.raises(EncodingError, match="longer than 4"):
        encode_value(DataType.STRING, "too long", WordOrder.ABCD, length=2)


@pytest.mark.parametrize(
    ("data_type", "words"),
    [
        (DataType.INT16, (0x8000,)),
        (DataType.SUNSSF, (0x8000,)),
        (DataType.UINT16, (0xFFFF,)),
        (DataType.ENUM16, (0xFFFF,)),
        (DataType.INT32, (0x8000, 0x0000)),
        (DataType.UINT32, (0xFFFF, 0xFFFF)),
        (DataType.ACC32, (0x0000, 0x0000)),
        (DataType.FLOAT32, (0x7FC0, 0x0000)),
        (DataType.STRING, (0, 0, 0)),
    ],
)
def test_sunspec_not_implemented_markers(data_type: DataType, words: tuple[int, ...]) -> None:
    # SunSpec Information Model Specification 1.0, 4.1.
    assert is_not_implemented(data_type, words, WordOrder.ABCD)
    assert not_implemented_words(data_type, WordOrder.ABCD, len(words)) == words or (
        data_type is DataType.FLOAT32
        and math.isnan(float(decode_value(data_type, words, WordOrder.ABCD)))
    )


@pytest.mark.parametrize(
    ("data_type", "words"),
    [
        (DataType.INT16, (0x8001,)),
        (DataType.UINT16, (0xFFFE,)),
        (DataType.ACC32, (0x0000, 0x0001)),
        (DataType.FLOAT32, (0x4366, 0x8000)),
    ],
)
def test_values_next_to_markers_are_values(data_type: DataType, words: tuple[int, ...]) -> None:
    assert not is_not_implemented(data_type, words, WordOrder.ABCD)


def test_markers_follow_the_word_order() -> None:
    words = not_implemented_words(DataType.INT32, WordOrder.CDAB)
    assert words == (0x0000, 0x8000)
    assert is_not_implemented(DataType.INT32, words, WordOrder.CDAB)


def test_register_words_must_be_16_bit() -> None:
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        decode_value(DataType.UINT16, (0x10000,), WordOrder.ABCD)


def test_register_types_and_function_codes() -> None:
    assert [t.function_code for t in RegisterType] == [1, 2, 3, 4]
    assert RegisterType.HOLDING.max_count == 125
    assert RegisterType.COIL.max_count == 2000
