"""The device door over real sockets: auth, the ghost protocol, bad frames, acks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.hub import RunningHub, device_id, reading, recv_ack_seqs, recv_json
from tests.support.polling import until


async def refused_status(hub: RunningHub, path: str, headers: dict[str, str] | None) -> int:
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as refused:
        await connect(hub.ws(path), additional_headers=headers)
    return refused.value.response.status_code


async def test_auth_matrix(sqlite_hub: RunningHub) -> None:
    me, other = device_id(), device_id()
    mine = await sqlite_hub.add_token(me)
    theirs = await sqlite_hub.add_token(other)
    revoked = await sqlite_hub.add_token(me)
    await sqlite_hub.storage.revoke_tokens(me)
    mine = await sqlite_hub.add_token(me)
    watcher = await sqlite_hub.dashboard(me)
    assert (await recv_json(watcher))["online"] is False

    cases: dict[str, dict[str, str] | None] = {
        "none": None,
        "not bearer": {"Authorization": f"Basic {mine}"},
        "unknown": {"Authorization": "Bearer " + "x" * 43},
        "other device's": {"Authorization": f"Bearer {theirs}"},
        "revoked": {"Authorization": f"Bearer {revoked}"},
    }
    for name, headers in cases.items():
        assert await refused_status(sqlite_hub, f"/ws/device/{me}", headers) == 403, name
    bad_ids = ["a" * 65, "ems%20001", "caf%C3%A9", "ems%2A"]
    for bad in bad_ids:
        status = await refused_status(
            sqlite_hub, f"/ws/device/{bad}", {"Authorization": f"Bearer {mine}"}
        )
        assert status == 403, bad

    # Nothing from refused sockets was stored or broadcast; the valid token works.
    assert await sqlite_hub.stored(me) == []
    device = await sqlite_hub.device(me, mine)
    assert (await recv_json(watcher))["online"] is True
    await device.send(json.dumps(reading(1)))
    assert await recv_ack_seqs(device, {1}) >= {1}
    live = await recv_json(watcher)
    assert (live["type"], live["seq"]) == ("reading", 1)
    metrics = await sqlite_hub.metrics()
    assert metrics['ems_refused_total{door="device",reason="missing_token"}'] == 2
    assert metrics['ems_refused_total{door="device",reason="bad_token"}'] == 3
    assert metrics['ems_refused_total{door="device",reason="bad_device_id"}'] == len(bad_ids)


async def test_revoking_closes_the_live_socket_with_1008(sqlite_hub: RunningHub) -> None:
    me = device_id()
    token = await sqlite_hub.add_token(me)
    device = await sqlite_hub.device(me, token)
    await device.send(json.dumps(reading(1)))
    await recv_ack_seqs(device, {1})
    assert await sqlite_hub.storage.revoke_tokens(me) == 1
    async with asyncio.timeout(20):
        await device.wait_closed()
    assert device.close_code == 1008
    assert (
        await refused_status(sqlite_hub, f"/ws/device/{me}", {"Authorization": f"Bearer {token}"})
        == 403
    )
    await until(lambda: not sqlite_hub.hub.reader.is_online(me))


async def test_ghost_storm_leaves_exactly_one(sqlite_hub: RunningHub) -> None:
    me = device_id()
    token = await sqlite_hub.add_token(me)
    storm = 200
    clients = await asyncio.gather(*(sqlite_hub.device(me, token) for _ in range(storm)))

    def closed() -> int:
        return sum(1 for c in clients if c.close_code is not None)

    await until(lambda: closed() == storm - 1, within=60)
    survivors = [c for c in clients if c.close_code is None]
    assert len(survivors) == 1
    assert all(c.close_code == 1008 for c in clients if c is not survivors[0])
    registered = sqlite_hub.hub._manager.publisher(me)
    assert registered is not None
    assert sqlite_hub.hub._manager.publishers() == [registered]

    # The survivor is the registered one: its readings flow and are acked.
    await survivors[0].send(json.dumps(reading(7)))
    assert 7 in await recv_ack_seqs(survivors[0], {7})
    metrics = await sqlite_hub.metrics()
    assert metrics['ems_connections{door="device"}'] == 1
    assert metrics["ems_replaced_total"] == storm - 1

    # No zombie: once the survivor leaves, nothing stays registered.
    await survivors[0].close()
    await until(lambda: sqlite_hub.hub._manager.publishers() == [])
    assert not sqlite_hub.hub.reader.is_online(me)


async def test_a_kicked_sockets_late_disconnect_keeps_its_successor(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    token = await sqlite_hub.add_token(me)
    first = await sqlite_hub.device(me, token)
    watcher = await sqlite_hub.dashboard(me)
    assert (await recv_json(watcher))["online"] is True
    second = await sqlite_hub.device(me, token)
    async with asyncio.timeout(20):
        await first.wait_closed()
    assert first.close_code == 1008
    # The old one's handler has run its disconnect by now (its socket is gone);
    # the successor must still be the registered, online publisher.
    assert (await recv_json(watcher))["online"] is True
    await asyncio.sleep(0.3)
    session = sqlite_hub.hub._manager.publisher(me)
    assert session is not None
    assert session.socket is not None
    await second.send(json.dumps(reading(3)))
    frame = await recv_json(watcher)
    assert (frame["type"], frame["seq"]) == ("reading", 3)
    assert 3 in await recv_ack_seqs(second, {3})
    # A frame the kicked socket still had in flight is never used.
    with pytest.raises(ConnectionClosed):
        await first.send(json.dumps(reading(4)))
    assert [r["seq"] for r in await sqlite_hub.stored(me)] == [3]


async def test_bad_frames_are_dropped_counted_and_the_connection_survives(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    too_high: dict[str, Any] = reading(5)
    too_high["battery"] = {"soc_pct": 150.0}
    bad_frames: list[str | bytes] = [
        b"\x00\x01binary",
        "{not json",
        "[1, 2, 3]",
        json.dumps({"type": "batch", "items": []}),
        json.dumps({"type": "batch", "items": [reading(None)]}),
        json.dumps({"type": "hello"}),
        json.dumps(too_high),
        json.dumps({"seq": 6, "ts": "2026-11-26T05:00:00"}),  # naive ts, no section
    ]
    for frame in bad_frames:
        await device.send(frame)
    await device.send(json.dumps(reading(8)))
    errors: dict[int, str] = {}
    acked: set[int] = set()
    async with asyncio.timeout(20):
        while not {5, 6, 8} <= acked:
            frame = json.loads(await device.recv())
            if frame["type"] == "error":
                errors[frame["seq"]] = frame["reason"]
            else:
                for first, last in frame["ranges"]:
                    acked.update(range(first, last + 1))
    assert errors[5] == "battery.soc_pct: must be <= 100"
    assert set(errors) == {5, 6}
    assert [r["seq"] for r in await sqlite_hub.stored(me)] == [8]
    metrics = await sqlite_hub.metrics()
    expected = {
        "binary": 1,
        "not_json": 1,
        "not_an_object": 2,
        "bad_batch": 1,
        "batch_item_without_seq": 1,
        "invalid_reading": 2,
    }
    for reason, count in expected.items():
        assert metrics[f'ems_invalid_total{{reason="{reason}"}}'] == count, reason
    assert metrics['ems_readings_in_total{path="live"}'] == 1


async def test_an_oversized_frame_closes_with_1009(sqlite_hub: RunningHub) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    await device.send(json.dumps(reading(1)))
    await recv_ack_seqs(device, {1})
    await device.send("x" * (1024 * 1024 + 1))
    async with asyncio.timeout(20):
        await device.wait_closed()
    assert device.close_code == 1009
    await until(lambda: not sqlite_hub.hub.reader.is_online(me))
    metrics = await sqlite_hub.metrics()
    assert metrics['ems_invalid_total{reason="too_large"}'] == 1


async def test_a_frame_of_exactly_one_mib_is_accepted(sqlite_hub: RunningHub) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    body = json.dumps(reading(1))
    padded = body[:-1] + ', "pad": "' + "p" * (1024 * 1024 - len(body) - 11) + '"}'
    assert len(padded.encode()) == 1024 * 1024
    await device.send(padded)
    assert 1 in await recv_ack_seqs(device, {1})


async def test_readings_without_seq_are_stored_and_broadcast_never_acked(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    watcher = await sqlite_hub.dashboard(me)
    await recv_json(watcher)  # status
    simple = reading(None)
    await device.send(json.dumps(simple))
    frame = await recv_json(watcher)
    assert frame["type"] == "reading"
    assert "seq" not in frame
    await until(lambda: sqlite_hub.hub.reader.writer_health().queue_depth == 0)
    await device.send(json.dumps(reading(2)))
    assert json.loads(await asyncio.wait_for(device.recv(), 20)) == {
        "type": "ack",
        "ranges": [[2, 2]],
    }
    stored = await sqlite_hub.stored(me)
    assert len(stored) == 2


async def test_a_resent_reading_is_stored_once_and_acked_each_time(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    same = json.dumps(reading(10))
    await device.send(same)
    await recv_ack_seqs(device, {10})
    await device.send(same)
    await device.send(json.dumps({"type": "batch", "items": [reading(10), reading(11)]}))
    await recv_ack_seqs(device, {10, 11})
    assert [r["seq"] for r in await sqlite_hub.stored(me)] == [10, 11]


async def test_batches_are_stored_not_pushed_live(sqlite_hub: RunningHub) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    watcher = await sqlite_hub.dashboard(me)
    await recv_json(watcher)  # status
    await device.send(json.dumps({"type": "batch", "items": [reading(i) for i in range(50)]}))
    await recv_ack_seqs(device, set(range(50)))
    await device.send(json.dumps(reading(50)))
    frame = await recv_json(watcher)
    while frame["type"] == "history":  # the batch is announced as stored history only
        frame = await recv_json(watcher)
    assert (frame["type"], frame["seq"]) == ("reading", 50)  # nothing of the batch before it
    await recv_ack_seqs(device, {50})
    assert len(await sqlite_hub.stored(me)) == 51
    metrics = await sqlite_hub.metrics()
    assert metrics['ems_readings_in_total{path="batch"}'] == 50
