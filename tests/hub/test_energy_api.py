"""Energy and CSV over HTTP through a real hub (docs/protocol.md, "Energy over HTTP")."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from hub.csv_export import READING_CSV_COLUMNS
from hub.storage.base import StoredReading
from telemetry import Reading
from telemetry.health import HealthFrame
from tests.support.hub import RunningHub, device_id, running_hub
from tests.support.polling import until

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
BERLIN = "Europe/Berlin"


def energy_rows(device: str, start: datetime, count: int, step_s: float) -> list[StoredReading]:
    """PV 1 kW, export 250 W, house 500 W, import 100 W, readings ``step_s`` apart."""
    rows = []
    for i in range(count):
        wh = step_s / 3600
        body = {
            "seq": i,
            "ts": (start + timedelta(seconds=step_s * i)).isoformat(),
            "grid": {"power_w": -150.0, "phase_power_w": [-50.0, -50.0, -50.0]},
            "energy": {
                "span_s": step_s,
                "complete": True,
                "pv_wh": 1000 * wh,
                "export_wh": 250 * wh,
                "import_wh": 100 * wh,
                "house_wh": 500 * wh,
            },
            "extra": {"note.a": 1.5},
        }
        reading = Reading.model_validate(body, context={"now": FAR_FUTURE})
        rows.append(StoredReading(device, reading, datetime.now(UTC)))
    return rows


async def get(hub: RunningHub, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        return await http.get(path, params=params)


async def test_hours_of_a_berlin_dst_day_and_the_totals(any_hub: RunningHub) -> None:
    me = device_id()
    # 2026-03-29 in Berlin: 23 hours, from 23:00 UTC the day before; a reading every 5 min.
    await any_hub.storage.write_readings(
        energy_rows(me, datetime(2026, 3, 28, 23, 5, tzinfo=UTC), 23 * 12, 300.0)
    )
    answer = await get(any_hub, f"/api/devices/{me}/energy", start="2026-03-29", tz="Europe/Berlin")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["device_id"], body["timezone"], body["period"]) == (me, "Europe/Berlin", "hour")
    assert (body["start"], body["end"]) == (
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    )
    hours = body["intervals"]
    assert len(hours) == 23
    assert [h["start"] for h in hours[:3]] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    assert hours[0]["end"] == hours[1]["start"]
    # The first hour lacks its first 5 minutes' span (the first reading is at 00:05).
    assert hours[0]["complete"] is True  # 11 spans of 300 s plus one span's slack
    for hour in hours[1:]:
        assert hour == {
            "start": hour["start"],
            "end": hour["end"],
            "pv_wh": 1000.0,
            "import_wh": 100.0,
            "export_wh": 250.0,
            "charge_wh": None,
            "discharge_wh": None,
            "house_wh": 500.0,
            "self_consumption_pct": 75.0,
            "autarky_pct": 80.0,
            "complete": True,
        }
    total = body["total"]
    assert (total["pv_wh"], total["house_wh"]) == (round(1000 * (23 - 1 / 12), 1), 11458.3)
    assert (total["self_consumption_pct"], total["autarky_pct"]) == (75.0, 80.0)
    assert total["complete"] is True
    # One day by day: one interval of 23 hours.
    (day,) = (
        await get(
            any_hub,
            f"/api/devices/{me}/energy",
            start="2026-03-29",
            period="day",
            tz="Europe/Berlin",
        )
    ).json()["intervals"]
    assert (day["start"], day["end"], day["pv_wh"]) == (
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
        total["pv_wh"],
    )


async def test_empty_intervals_are_listed_and_ratios_need_a_denominator(
    sqlite_hub: RunningHub,
) -> None:
    me = device_id()
    answer = await get(
        sqlite_hub, f"/api/devices/{me}/energy", start="2026-01", end="2026-03", period="month"
    )
    body = answer.json()
    assert body["timezone"] == "UTC"  # no zone stored, none asked
    assert [i["start"] for i in body["intervals"]] == [
        "2026-01-01T00:00:00+00:00",
        "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00",
    ]
    for interval in [*body["intervals"], body["total"]]:
        assert interval["pv_wh"] is None
        assert interval["self_consumption_pct"] is None
        assert interval["complete"] is False


async def test_the_zone_comes_from_the_health_frame_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    me = device_id()
    async with running_hub(None, tmp_path / "data") as hub:
        device = await hub.device(me, await hub.add_token(me))
        frame = json.loads(HealthFrame(devices=[], timezone="Asia/Kolkata").wire())
        await device.send(json.dumps(frame))
        await until(lambda: hub.hub._site_zones._stored.get(me) == "Asia/Kolkata")
        # A zone this hub does not know is not stored; the frame is still kept.
        await device.send(json.dumps({**frame, "timezone": "Mars/Olympus_Mons"}))
        await until(lambda: hub.hub.reader.health(me) is not None)
    async with running_hub(None, tmp_path / "data") as hub:
        body = (await get(hub, f"/api/devices/{me}/energy", start="2026-12-03")).json()
        assert body["timezone"] == "Asia/Kolkata"
        # Half an hour off UTC: local hours start at :30 UTC.
        assert body["intervals"][0]["start"] == "2026-12-03T00:00:00+05:30"
        assert len(body["intervals"]) == 24
        # tz overrides the stored zone.
        other = (await get(hub, f"/api/devices/{me}/energy", start="2026-12-03", tz="UTC")).json()
        assert other["timezone"] == "UTC"


async def test_bad_parameters_are_422_naming_them(sqlite_hub: RunningHub) -> None:
    me = device_id()
    cases = {
        (("period", "week"),): "period",
        (("tz", "Mars/Olympus"),): "tz",
        (("start", "2026-13"),): "start",
        (("start", "yesterday"),): "start",
        (("start", "2026-12-04"), ("end", "2026-12-02")): "start",
        (("start", "2020"), ("end", "2026"), ("period", "hour")): "period",
        (("format", "csv"),): "format",
    }
    for params, name in cases.items():
        for route in ("energy", "energy.csv"):
            answer = await get(sqlite_hub, f"/api/devices/{me}/{route}", **dict(params))
            assert answer.status_code == 422, (params, answer.text)
            assert answer.json()["detail"].startswith(f"{name}: "), answer.json()
    bad = await get(sqlite_hub, f"/api/devices/{me}/readings.csv", period="day")
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("period: unknown parameter")


async def test_energy_csv_is_the_intervals_as_a_file(any_hub: RunningHub) -> None:
    me = device_id()
    await any_hub.storage.write_readings(
        # Two Berlin days of readings every 15 minutes, but the last hour.
        energy_rows(me, datetime(2026, 11, 30, 23, 0, tzinfo=UTC), 2 * 24 * 4 - 4, 900.0)
    )
    answer = await get(
        any_hub,
        f"/api/devices/{me}/energy.csv",
        start="2026-12-01",
        end="2026-12-02",
        period="day",
        tz="Europe/Berlin",
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    assert answer.text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(answer.text, newline="")))
    assert [(r["start"], r["pv_wh"], r["house_wh"], r["complete"]) for r in rows] == [
        ("2026-12-01T00:00:00+01:00", "24000.0", "12000.0", "true"),
        ("2026-12-02T00:00:00+01:00", "23000.0", "11500.0", "false"),
    ]
    assert rows[0]["charge_wh"] == ""
    assert rows[0]["self_consumption_pct"] == "75.0"


async def test_readings_csv_flattens_and_streams_every_page(any_hub: RunningHub) -> None:
    me = device_id()
    start = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    count = 12_345  # more than two pages
    await any_hub.storage.write_readings(energy_rows(me, start, count, 1.0))
    answer = await get(
        any_hub,
        f"/api/devices/{me}/readings.csv",
        start="2026-11-30T00:00:00Z",
        end="2026-11-30T04:00:00Z",
    )
    assert answer.status_code == 200
    assert "readings" in answer.headers["content-disposition"]
    reader = csv.reader(io.StringIO(answer.text, newline=""))
    header = next(reader)
    assert tuple(header) == READING_CSV_COLUMNS
    assert header[:3] == ["ts", "seq", "inverter.ac_power_w"]
    rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert len(rows) == count
    assert [r["seq"] for r in rows[:3]] == ["0", "1", "2"]
    first = rows[0]
    assert first["ts"] == "2026-11-30T00:00:00Z"
    assert first["grid.power_w"] == "-150.0"
    assert [first[f"grid.phase_power_w.{n}"] for n in (1, 2, 3)] == ["-50.0"] * 3
    assert first["grid.voltage_v"] == ""
    assert first["energy.complete"] == "true"
    assert float(first["energy.pv_wh"]) == 1000 / 3600
    assert json.loads(first["extra"]) == {"note.a": 1.5}  # a comma inside: quoted
    assert rows[-1]["ts"] == (start + timedelta(seconds=count - 1)).isoformat().replace(
        "+00:00", "Z"
    )


async def test_a_viewer_token_guards_the_energy_routes(tmp_path: Path) -> None:
    me = device_id()
    async with running_hub(None, tmp_path / "data", viewer_token="v" * 32) as hub:
        for route in ("energy", "energy.csv", "readings.csv"):
            refused = await get(hub, f"/api/devices/{me}/{route}")
            assert refused.status_code == 401, refused.text
            allowed = await get(hub, f"/api/devices/{me}/{route}", token="v" * 32)
            assert allowed.status_code == 200, allowed.text


async def test_readings_csv_takes_the_range_as_asked(sqlite_hub: RunningHub) -> None:
    me = device_id()
    start = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    await sqlite_hub.storage.write_readings(energy_rows(me, start, 600, 1.0))
    answer = await get(
        sqlite_hub,
        f"/api/devices/{me}/readings.csv",
        start="2026-11-30T10:02:00Z",
        end="2026-11-30T10:03:00Z",
    )
    rows = list(csv.DictReader(io.StringIO(answer.text, newline="")))
    assert [r["ts"] for r in rows[:1] + rows[-1:]] == [
        "2026-11-30T10:02:00Z",
        "2026-11-30T10:02:59Z",
    ]
    assert len(rows) == 60
    too_long = await get(sqlite_hub, f"/api/devices/{me}/readings.csv", start="2025", end="2026")
    assert too_long.status_code == 422
    assert too_long.json()["detail"].startswith("end: ")
