"""The device door against hostile frames, over real sockets: nothing a device sends
takes its connection down, costs the valid items beside it, or forges a log line."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from hub.batch_writer import AckSink
from hub.storage.base import StoredReading
from tests.support.hub import RunningHub, device_id, reading, running_hub
from tests.support.polling import until

DEEP = "[" * 1000 + "]" * 1000


async def answers(
    client: ClientConnection, want_acked: set[int]
) -> tuple[dict[int, str], set[int]]:
    """Error reasons by seq and acked seqs, until every seq of ``want_acked`` is acked."""
    errors: dict[int, str] = {}
    acked: set[int] = set()
    async with asyncio.timeout(20):
        while not want_acked <= acked:
            frame = json.loads(await client.recv())
            if frame["type"] == "error":
                errors[frame["seq"]] = frame["reason"]
            else:
                for first, last in frame["ranges"]:
                    acked.update(range(first, last + 1))
    return errors, acked


async def test_a_batch_with_a_deep_item_and_overflowing_times_keeps_its_valid_items(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    items = [json.dumps(reading(n)) for n in (1, 3, 6)]
    deep = json.dumps(reading(2)).replace('"power_w": 102.0', f'"power_w": {DEEP}')
    assert DEEP in deep
    year_1 = json.dumps(reading(4, ts=None) | {"ts": "0001-01-01T00:00:00+05:00"})
    year_9999 = json.dumps(reading(5) | {"ts": "9999-12-31T23:59:59-14:00"})
    # An unknown key nested deep is still an unknown key: ignored, the reading is valid.
    deep_unknown = json.dumps(reading(7))[:-1] + f', "junk": {DEEP}}}'
    listed = ", ".join([items[0], deep, items[1], year_1, year_9999, items[2], deep_unknown])
    batch = f'{{"type": "batch", "items": [{listed}]}}'
    await device.send(batch)
    errors, _ = await answers(device, set(range(1, 8)))
    assert errors.keys() == {2, 4, 5}
    assert errors[2].startswith("grid.power_w")
    assert errors[4].startswith("ts: is before 2020-01-01")
    assert errors[5].startswith("ts: is more than 5 minutes ahead")
    assert [r["seq"] for r in await sqlite_hub.stored(me)] == [1, 3, 6, 7]
    # The connection is still open and in use.
    await device.send(json.dumps(reading(8)))
    assert (await answers(device, {8}))[1] >= {8}
    # A whole frame nested too deep is one bad frame, nothing more.
    await device.send(DEEP)
    await device.send("[" * 100_000)
    await device.send(json.dumps(reading(9)))
    assert (await answers(device, {9}))[1] >= {9}
    metrics = await sqlite_hub.metrics()
    assert metrics['ems_invalid_total{reason="invalid_reading"}'] == 3
    assert metrics['ems_invalid_total{reason="not_an_object"}'] == 1
    assert metrics['ems_invalid_total{reason="not_json"}'] == 1
    assert metrics['ems_internal_errors_total{door="device"}'] == 0


async def test_wrong_types_are_invalid_and_an_impossible_seq_is_never_echoed(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    bad: dict[int, dict[str, Any]] = {
        1: reading(1, grid={"power_w": "123.5"}),
        2: reading(2, grid={"power_w": True}),
        3: reading(3) | {"ts": 1764135000},
        4: reading(4) | {"ts": "1764135000"},
        5: {"seq": 5, "ts": reading(5)["ts"], "grid": {}},
        6: {"seq": 6, "ts": reading(6)["ts"], "grid": {"colour": "red"}},
        7: reading(7, extra={"cycles": "312"}),
    }
    for frame in bad.values():
        await device.send(json.dumps(frame))
    huge = [2**63, int("9" * 4000)]
    for seq in huge:
        await device.send(json.dumps(reading(10) | {"seq": seq}))
    await device.send(json.dumps({"type": "batch", "items": [reading(11) | {"seq": 2**63}]}))
    await device.send(json.dumps(reading(20)))
    errors, acked = await answers(device, {*bad, 20})
    assert errors.keys() == set(bad)
    assert errors[1].startswith("grid.power_w")
    assert errors[3].startswith("ts: must be an RFC 3339 date-time")
    assert errors[5] == "reading: section grid needs at least one value"
    assert not acked & {10, 11, *huge}
    assert [r["seq"] for r in await sqlite_hub.stored(me)] == [20]
    metrics = await sqlite_hub.metrics()
    assert metrics['ems_invalid_total{reason="invalid_reading"}'] == len(bad) + len(huge)
    assert metrics['ems_invalid_total{reason="batch_item_without_seq"}'] == 1


async def test_a_forged_log_line_in_an_extra_name_is_refused_and_escaped(
    sqlite_hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    forged = "x\n2026-11-26 05:30:00 CRITICAL hub: storage lost, wiping data"
    await device.send(json.dumps(reading(1, extra={forged: 1.0})))
    await device.send(json.dumps({"type": "\x1b[2J\r\nCRITICAL hub: forged"}))
    # Every name the register maps and simulators use stays valid.
    await device.send(json.dumps(reading(2, extra={"bms_cycle_count": 3, "mppt1.v-2_x": 4})))
    errors, _ = await answers(device, {1, 2})
    assert errors.keys() == {1}
    assert "names are 1 to 64 characters of A-Z a-z 0-9 _ . -" in errors[1]
    await until(lambda: "\\x1b[2J" in caplog.text)
    for record in caplog.records:
        message = record.getMessage()
        assert not {"\n", "\r", "\x1b"} & set(message), message
    assert "x\\n2026-11-26 05:30:00 CRITICAL" in caplog.text
    assert [r["seq"] for r in await sqlite_hub.stored(me)] == [2]


@pytest.mark.parametrize("path_id", ["..", ".", "%2E%2E", "%2e"])
async def test_dot_device_ids_are_refused_at_the_handshake(
    sqlite_hub: RunningHub, path_id: str
) -> None:
    token = await sqlite_hub.add_token("dots")
    with pytest.raises(InvalidStatus) as refused:
        await sqlite_hub.device(f"{path_id}", token)
    assert refused.value.response.status_code in {403, 404}


@pytest.fixture
async def faulty_hub(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[RunningHub]:
    """A hub whose writer fails on a reading for device ``faulty`` (a bug, injected)."""
    caplog.set_level(logging.INFO)
    async with running_hub(None, tmp_path / "data") as running:
        offer = running.hub._writer.offer

        def failing_offer(row: StoredReading, sink: AckSink | None) -> bool:
            if row.reading.seq == 13:
                raise RuntimeError("injected fault")
            return offer(row, sink)

        running.hub._writer.offer = failing_offer  # type: ignore[method-assign]
        yield running


async def test_an_unexpected_error_closes_with_1011_counted_and_logged_once(
    faulty_hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    me = device_id()
    device = await faulty_hub.device(me, await faulty_hub.add_token(me))
    await device.send(json.dumps(reading(12)))
    assert (await answers(device, {12}))[1] >= {12}
    await device.send(json.dumps(reading(13)))
    async with asyncio.timeout(20):
        await device.wait_closed()
    assert device.close_code == 1011
    metrics = await faulty_hub.metrics()
    assert metrics['ems_internal_errors_total{door="device"}'] == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "injected fault" in (errors[0].exc_text or "")
    assert "1011" in errors[0].getMessage()
    # The device comes back and streams on.
    again = await faulty_hub.device(me, await faulty_hub.add_token(me))
    await again.send(json.dumps(reading(14)))
    assert (await answers(again, {14}))[1] >= {14}
