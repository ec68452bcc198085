"""The HTTP API on a real server (docs/protocol.md: devices and stored readings over HTTP)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hub import (
    RunningHub,
    device_id,
    parse_metrics,
    reading,
    recv_ack_seqs,
    running_hub,
)


async def get(hub: RunningHub, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=hub.http, timeout=20) as http:
        return await http.get(path, **kwargs)


async def test_health_and_readiness(sqlite_hub: RunningHub) -> None:
    health = await get(sqlite_hub, "/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await get(sqlite_hub, "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


async def test_devices_lists_token_holders_and_readings(any_hub: RunningHub) -> None:
    sqlite_hub = any_hub
    online, idle = device_id(), device_id()
    device = await sqlite_hub.device(online, await sqlite_hub.add_token(online))
    await sqlite_hub.add_token(idle)
    sent = reading(4)
    await device.send(json.dumps(sent))
    await recv_ack_seqs(device, {4})
    answer = await get(sqlite_hub, "/api/devices")
    assert answer.status_code == 200
    by_id = {entry["device_id"]: entry for entry in answer.json()}
    assert by_id[online]["online"] is True
    assert by_id[online]["last_seen"] == sent["ts"]
    assert by_id[online]["last_reading"]["seq"] == 4
    assert by_id[online]["last_reading"]["grid"]["power_w"] == sent["grid"]["power_w"]
    assert by_id[idle] == {
        "device_id": idle,
        "online": False,
        "last_seen": None,
        "last_reading": None,
        "health": None,
    }


async def test_stored_readings_raw_and_bucketed(any_hub: RunningHub) -> None:
    sqlite_hub = any_hub  # both backends answer the same
    me = device_id()
    device = await sqlite_hub.device(me, await sqlite_hub.add_token(me))
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    items = [reading(i, ts=base + timedelta(seconds=20 * i)) for i in range(6)]
    await device.send(json.dumps({"type": "batch", "items": items}))
    await recv_ack_seqs(device, set(range(6)))

    raw = await get(sqlite_hub, f"/api/devices/{me}/readings")
    assert raw.status_code == 200
    body = raw.json()
    assert body["device_id"] == me
    assert [r["seq"] for r in body["readings"]] == list(range(6))
    assert [r["ts"] for r in body["readings"]] == [i["ts"] for i in items]

    # Without start, limit keeps the newest: the last two of the hour, in time order.
    limited = await get(sqlite_hub, f"/api/devices/{me}/readings", params={"limit": "2"})
    assert [r["seq"] for r in limited.json()["readings"]] == [4, 5]
    newest = await get(
        sqlite_hub, f"/api/devices/{me}/readings", params={"limit": "3", "order": "desc"}
    )
    assert [r["seq"] for r in newest.json()["readings"]] == [5, 4, 3]
    paged = await get(
        sqlite_hub,
        f"/api/devices/{me}/readings",
        params={"limit": "2", "start": (base + timedelta(seconds=20)).isoformat()},
    )
    assert [r["seq"] for r in paged.json()["readings"]] == [1, 2]  # from start, forward

    window = {
        "start": (base + timedelta(seconds=20)).isoformat(),
        "end": (base + timedelta(seconds=60)).isoformat(),
    }
    windowed = await get(sqlite_hub, f"/api/devices/{me}/readings", params=window)
    assert [r["seq"] for r in windowed.json()["readings"]] == [1, 2]

    bucketed = await get(sqlite_hub, f"/api/devices/{me}/readings", params={"bucket": "60s"})
    assert bucketed.status_code == 200
    answer = bucketed.json()
    assert (answer["device_id"], answer["bucket"]) == (me, "60s")
    assert len(answer["buckets"]) == 2
    # grid.power_w is 100 + seq: the first minute averages seqs 0..2, the second 3..5.
    assert answer["buckets"][0]["grid"]["power_w"] == pytest.approx(101.0)
    assert answer["buckets"][1]["grid"]["power_w"] == pytest.approx(104.0)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-11-26T05:00:00"}, "end"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"bucket": "fortnight"}, "bucket"),
        ({"start": "2026-11-26T06:00:00Z", "end": "2026-11-26T05:00:00Z"}, "start"),
        ({"order": "newest"}, "order"),
        ({"format": "csv"}, "format"),
        ({"limit": "5", "sort": "desc"}, "sort"),
    ],
)
async def test_bad_query_parameters_are_422_naming_the_parameter(
    sqlite_hub: RunningHub, query: dict[str, str], parameter: str
) -> None:
    answer = await get(sqlite_hub, "/api/devices/ems_001/readings", params=query)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(f"{parameter}: ")


async def test_buckets_keep_a_counters_last_value_rounded_to_its_resolution(
    any_hub: RunningHub,
) -> None:
    me = device_id()
    device = await any_hub.device(me, await any_hub.add_token(me))
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    items = []
    for i in range(6):  # two minutes of three readings each
        item = reading(i, ts=base + timedelta(seconds=20 * i))
        item["grid"]["power_w"] = [0.1, 0.2, -0.3, 816.46, 816.45, 816.47][i]
        item["solar"] = {"pv_power_w": 0.0, "energy_today_wh": 1000.0 + 10 * i}
        items.append(item)
    await device.send(json.dumps({"type": "batch", "items": items}))
    await recv_ack_seqs(device, set(range(6)))

    answer = await get(any_hub, f"/api/devices/{me}/readings", params={"bucket": "60s"})
    buckets = answer.json()["buckets"]
    assert [b["solar"]["energy_today_wh"] for b in buckets] == [1020.0, 1050.0]
    # 0.1 + 0.2 - 0.3 is 5.5e-17 in floats: rounded to the power's resolution, 0.0.
    assert [b["grid"]["power_w"] for b in buckets] == [0.0, 816.5]
    assert "-0.0" not in answer.text
    assert re.search(r"[0-9]e-[0-9]", answer.text) is None  # no float noise
    newest_first = await get(
        any_hub, f"/api/devices/{me}/readings", params={"bucket": "60s", "order": "desc"}
    )
    assert [b["ts"] for b in newest_first.json()["buckets"]] == [b["ts"] for b in buckets[::-1]]


async def test_a_bad_device_id_is_400(sqlite_hub: RunningHub) -> None:
    answer = await get(sqlite_hub, "/api/devices/" + "x" * 65 + "/readings")
    assert answer.status_code == 400


async def test_metrics_are_prometheus_text(sqlite_hub: RunningHub) -> None:
    answer = await get(sqlite_hub, "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse_metrics(answer.text)
    for name in [
        'ems_connections{door="device"}',
        'ems_connections{door="dashboard"}',
        'ems_readings_in_total{path="live"}',
        'ems_invalid_total{reason="not_json"}',
        'ems_dropped_total{reason="writer_queue_full"}',
        'ems_dropped_total{reason="dashboard_slow"}',
        "ems_acks_sent_total",
        "ems_writer_queue_depth",
        "ems_writer_lag_seconds",
        "ems_dashboard_queue_depth",
    ]:
        assert name in samples, name
    assert "# TYPE ems_readings_in_total counter" in answer.text


async def test_the_api_asks_for_the_viewer_token_when_set(
    tmp_path: Path, no_errors_logged: Any
) -> None:
    async with running_hub(None, tmp_path, viewer_token="look-only") as hub:
        assert (await get(hub, "/api/devices")).status_code == 401
        assert (await get(hub, "/api/devices", params={"token": "look-only"})).status_code == 200
        headers = {"Authorization": "Bearer look-only"}
        assert (await get(hub, "/api/devices", headers=headers)).status_code == 200
        assert (await get(hub, "/healthz")).status_code == 200
        assert (await get(hub, "/metrics")).status_code == 200
