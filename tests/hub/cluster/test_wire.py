"""Messages between hubs, on plain values (hub/cluster/wire.py)."""

from __future__ import annotations

import pytest

from hub.cluster.wire import (
    Code,
    DeviceMessage,
    Kick,
    Watch,
    WireError,
    decode_control,
    device_of_channel,
    encode_control,
    is_valid_hub_id,
    status_online,
    status_version,
)
from hub.connections import status_frame


def test_a_device_message_survives_the_trip_frames_byte_for_byte() -> None:
    frames = ('{"type":"reading","seq":1,"note":"a\\nb"}', '{"type":"health"}')
    message = DeviceMessage("hub-1", 7, ((Code.READING, frames[0]), (Code.HEALTH, frames[1])))
    decoded = DeviceMessage.decode(message.encode())
    assert decoded == message
    assert decoded.items[0][1] == frames[0]


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"h":"hub 1","e":1,"k":""}',
        b'{"h":"hub","e":-1,"k":""}',
        b'{"h":"hub","e":true,"k":""}',
        b'{"h":"hub","e":1,"k":"r"}',
        b'{"h":"hub","e":1,"k":"z"}\n{}',
        b"[1]",
        b"\xff",
    ],
)
def test_a_bad_device_message_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(WireError):
        DeviceMessage.decode(data)


def test_status_versions_order_online_before_offline_and_epochs_first() -> None:
    assert status_version(3, True) < status_version(3, False) < status_version(4, True)


def test_status_online_reads_the_dashboards_status_frame() -> None:
    assert status_online(status_frame("d", True, None)) is True
    assert status_online(status_frame("d", False, None)) is False
    with pytest.raises(WireError):
        status_online('{"type":"status"}')


def test_control_messages_round_trip_and_bad_ones_are_refused() -> None:
    kick = Kick(t="kick", d="dev_1", e=4, h="hub0")
    assert decode_control(encode_control(kick).encode()) == kick
    watch = Watch(t="watch", h="hub1", d=["a", "b"], ttl=30.0, snapshot=False)
    assert decode_control(encode_control(watch).encode()) == watch
    for bad in (b'{"t":"kick","d":"a b","e":1,"h":"x"}', b'{"t":"other"}', b"{", b"[]"):
        with pytest.raises(WireError):
            decode_control(bad)


def test_ids_and_channels() -> None:
    assert is_valid_hub_id("host-12.a_b")
    for bad in ("host 1", "", "'", "x" * 65):
        assert not is_valid_hub_id(bad)
    assert device_of_channel("ems:dev:abc") == "abc"
    assert device_of_channel("ems:ctl") is None
