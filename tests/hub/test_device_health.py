"""Device health and history notices through a real hub (docs/protocol.md, "Device health")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from telemetry.health import DeviceHealthReport, HealthFrame, HealthState
from tests.support.hub import RunningHub, device_id, reading, recv_ack_seqs, recv_json
from tests.support.polling import until


def failing_inverter_frame() -> str:
    return HealthFrame(
        interval_s=1.0,
        devices=[
            DeviceHealthReport(
                name="inverter",
                role="inverter",
                state=HealthState.FAILING,
                for_s=12.0,
                last_ok_age_s=13.0,
                error="connection refused",
            ),
            DeviceHealthReport(name="meter", role="grid", state=HealthState.OK, last_ok_age_s=0.4),
        ],
    ).wire()


async def devices_by_id(hub: RunningHub) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=hub.http, timeout=20) as http:
        answer = await http.get("/api/devices")
    answer.raise_for_status()
    return {entry["device_id"]: entry for entry in answer.json()}


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_health_frame_reaches_dashboards_the_api_and_metrics(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    dashboard = await sqlite_hub.dashboard(me)
    assert (await recv_json(dashboard))["type"] == "status"

    before = datetime.now(UTC)
    await device.send(failing_inverter_frame())
    frame = await recv_json(dashboard)
    after = datetime.now(UTC)
    assert (frame["type"], frame["device_id"], frame["failing"]) == ("health", me, ["inverter"])
    inverter, meter = frame["devices"]
    assert (inverter["name"], inverter["state"], inverter["error"]) == (
        "inverter",
        "failing",
        "connection refused",
    )
    # Ages become instants on the hub's clock when the frame arrives.
    since = instant(inverter["since"])
    assert before - timedelta(seconds=12) <= since <= after - timedelta(seconds=12)
    assert instant(inverter["last_ok"]) == since - timedelta(seconds=1)
    assert meter["state"] == "ok"

    entry = (await devices_by_id(sqlite_hub))[me]
    assert entry["online"] is True
    assert entry["health"]["failing"] == ["inverter"]
    assert entry["health"]["interval_s"] == 1.0
    assert [d["since"] for d in entry["health"]["devices"]] == [
        d["since"] for d in frame["devices"]
    ]

    samples = await sqlite_hub.metrics()
    assert samples['ems_edge_devices{state="failing"}'] == 1
    assert samples['ems_edge_devices{state="ok"}'] == 1
    assert samples["ems_edge_sites_failing"] == 1

    # A dashboard that opens later gets the health right after the status.
    late = await sqlite_hub.dashboard(me)
    assert (await recv_json(late))["type"] == "status"
    assert (await recv_json(late))["failing"] == ["inverter"]


async def test_a_health_frame_written_with_spaces_is_understood(sqlite_hub: RunningHub) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    frame = json.loads(failing_inverter_frame())
    await device.send(json.dumps(frame, indent=1))  # {\n "type": "health", ...
    await until(lambda: sqlite_hub.hub.reader.health(me) is not None)
    health = sqlite_hub.hub.reader.health(me)
    assert health is not None
    assert health.failing == ("inverter",)


async def test_a_malformed_health_frame_is_counted_and_the_connection_stays(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    await device.send('{"type":"health","devices":[{"name":"inverter","state":"on fire"}]}')
    await until(lambda: sqlite_hub.hub.reader.is_online(me))
    await device.send(json.dumps(reading(1)))
    await recv_ack_seqs(device, {1})
    samples = await sqlite_hub.metrics()
    assert samples['ems_invalid_total{reason="not_an_object"}'] >= 1
    assert (await devices_by_id(sqlite_hub))[me]["health"] is None


async def test_a_stored_batch_tells_open_dashboards_its_time_range(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    dashboard = await sqlite_hub.dashboard(me)
    assert (await recv_json(dashboard))["type"] == "status"
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    items = [reading(seq, ts=base + timedelta(seconds=seq)) for seq in range(10)]
    await device.send(json.dumps({"type": "batch", "items": items}))
    await recv_ack_seqs(device, set(range(10)))

    stored: set[str] = set()
    while len(stored) < 10:  # one notice per commit; a batch may take several
        frame = await recv_json(dashboard)
        assert frame["type"] == "history", frame  # never pushed as live readings
        start, end = instant(frame["start"]), instant(frame["end"])
        stored |= {item["ts"] for item in items if start <= instant(item["ts"]) <= end}
    async with httpx.AsyncClient(base_url=sqlite_hub.http, timeout=20) as http:
        answer = await http.get(
            f"/api/devices/{me}/readings",
            params={"start": frame["start"], "end": (end + timedelta(microseconds=1)).isoformat()},
        )
    assert len(answer.json()["readings"]) >= 1  # the range names readings already stored
