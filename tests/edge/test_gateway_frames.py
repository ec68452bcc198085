"""The gateway's Modbus TCP framing on plain bytes: headers, requests, responses, refusals."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import ExceptionCode
from drivers.registers import RegisterType
from edge.gateway_frames import (
    FrameError,
    Function,
    Header,
    Read,
    Refusal,
    Write,
    encode_exception,
    encode_read,
    encode_write,
    pack_bits,
    parse_header,
    parse_pdu,
)

HEADER = Header(transaction=0x1234, protocol=0, length=6, unit=17)


def test_a_header_is_read_from_its_seven_bytes() -> None:
    header = parse_header(bytes.fromhex("1234 0000 0006 11"))
    assert header == HEADER
    assert header.pdu_size == 5


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes.fromhex("1234 0001 0006 11"), "protocol id 1"),
        (bytes.fromhex("aaaa 5555 aaaa 55"), "protocol id 21845"),
        (bytes.fromhex("1234 0000 0001 11"), "length 1"),
        (bytes.fromhex("1234 0000 00ff 11"), "length 255"),
        (bytes.fromhex("1234 0000 00"), "5 bytes"),
    ],
)
def test_a_header_no_modbus_client_sends_is_a_frame_error(data: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_header(data)


@pytest.mark.parametrize(
    ("pdu", "expected"),
    [
        ("03 9c40 0002", Read(Function.READ_HOLDING_REGISTERS, RegisterType.HOLDING, 40000, 2)),
        ("04 0000 007d", Read(Function.READ_INPUT_REGISTERS, RegisterType.INPUT, 0, 125)),
        ("01 0010 07d0", Read(Function.READ_COILS, RegisterType.COIL, 16, 2000)),
        ("02 ffff 0001", Read(Function.READ_DISCRETE_INPUTS, RegisterType.DISCRETE, 65535, 1)),
        ("06 9c4c 0005", Write(Function.WRITE_SINGLE_REGISTER, 40012, (5,))),
        ("10 9c4c 0002 04 0001 fffe", Write(Function.WRITE_MULTIPLE_REGISTERS, 40012, (1, 65534))),
    ],
)
def test_requests_served(pdu: str, expected: Read | Write) -> None:
    assert parse_pdu(bytes.fromhex(pdu)) == expected


@pytest.mark.parametrize(
    ("pdu", "code"),
    [
        ("", ExceptionCode.ILLEGAL_FUNCTION),
        ("05 0000 ff00", ExceptionCode.ILLEGAL_FUNCTION),  # write single coil: not served
        ("2b 0e01 00", ExceptionCode.ILLEGAL_FUNCTION),  # device identification
        ("03 0000 0000", ExceptionCode.ILLEGAL_DATA_VALUE),  # quantity 0
        ("03 0000 007e", ExceptionCode.ILLEGAL_DATA_VALUE),  # 126 registers
        ("01 0000 07d1", ExceptionCode.ILLEGAL_DATA_VALUE),  # 2001 coils
        ("03 0000", ExceptionCode.ILLEGAL_DATA_VALUE),  # too short
        ("03 0000 0001 00", ExceptionCode.ILLEGAL_DATA_VALUE),  # too long
        ("03 ffff 0002", ExceptionCode.ILLEGAL_DATA_ADDRESS),  # past 65535
        ("06 0000", ExceptionCode.ILLEGAL_DATA_VALUE),
        ("10 0000 0002 03 0001 0002", ExceptionCode.ILLEGAL_DATA_VALUE),  # byte count
        ("10 0000 0002 04 0001", ExceptionCode.ILLEGAL_DATA_VALUE),  # fewer bytes than said
        ("10 0000 007c f8" + "00" * 248, ExceptionCode.ILLEGAL_DATA_VALUE),  # 124 registers
        ("10 ffff 0002 04 0001 0002", ExceptionCode.ILLEGAL_DATA_ADDRESS),
    ],
)
def test_requests_refused_with_the_code_the_specification_gives(
    pdu: str, code: ExceptionCode
) -> None:
    refusal = parse_pdu(bytes.fromhex(pdu))
    assert isinstance(refusal, Refusal)
    assert refusal.code is code
    assert refusal.reason


def test_register_and_bit_responses() -> None:
    read = Read(Function.READ_HOLDING_REGISTERS, RegisterType.HOLDING, 40000, 2)
    assert encode_read(HEADER, read, (0x5375, 0x6E53)) == bytes.fromhex(
        "1234 0000 0007 11 03 04 5375 6e53"
    )
    coils = Read(Function.READ_COILS, RegisterType.COIL, 0, 10)
    # MAP 6.1: coil 0 in the lowest bit of the first byte; the last byte padded with 0.
    assert encode_read(HEADER, coils, (1, 0, 1, 1, 0, 0, 0, 0, 1, 1)) == bytes.fromhex(
        "1234 0000 0005 11 01 02 0d 03"
    )
    with pytest.raises(ValueError, match="3 values for a read of 2"):
        encode_read(HEADER, read, (1, 2, 3))


def test_write_responses_and_exceptions() -> None:
    single = Write(Function.WRITE_SINGLE_REGISTER, 40012, (5,))
    assert encode_write(HEADER, single) == bytes.fromhex("1234 0000 0006 11 06 9c4c 0005")
    several = Write(Function.WRITE_MULTIPLE_REGISTERS, 40012, (1, 2, 3))
    assert encode_write(HEADER, several) == bytes.fromhex("1234 0000 0006 11 10 9c4c 0003")
    assert encode_exception(HEADER, 0x10, ExceptionCode.ILLEGAL_FUNCTION) == bytes.fromhex(
        "1234 0000 0003 11 90 01"
    )


@given(st.lists(st.integers(0, 1), min_size=1, max_size=2000))
def test_packed_bits_unpack_to_themselves(bits: list[int]) -> None:
    packed = pack_bits(bits)
    assert len(packed) == (len(bits) + 7) // 8
    assert [(packed[i // 8] >> (i % 8)) & 1 for i in range(len(bits))] == bits


@given(st.binary(max_size=260))
def test_any_pdu_is_a_request_or_a_refusal(pdu: bytes) -> None:
    result = parse_pdu(pdu)
    assert isinstance(result, Read | Write | Refusal)
    if isinstance(result, Read):
        assert result.end <= 0x10000
        assert pdu[0] in (1, 2, 3, 4)
    if isinstance(result, Write):
        assert 1 <= len(result.values) <= 123
        assert result.end <= 0x10000


@given(st.integers(0, 65535), st.lists(st.integers(0, 65535), min_size=1, max_size=123))
def test_a_written_block_parses_back(address: int, values: list[int]) -> None:
    pdu = struct.pack(">BHHB", 0x10, address, len(values), 2 * len(values))
    pdu += struct.pack(f">{len(values)}H", *values)
    result = parse_pdu(pdu)
    if address + len(values) > 0x10000:
        assert isinstance(result, Refusal)
        assert result.code is ExceptionCode.ILLEGAL_DATA_ADDRESS
    else:
        assert result == Write(Function.WRITE_MULTIPLE_REGISTERS, address, tuple(values))
