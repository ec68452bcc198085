"""The dashboard's energy in a real browser, against a real hub holding known readings.

One ``ems hub serve`` process with a viewer token on PostgreSQL; a device that
connects over the device door, names its time zone in a health frame
(Asia/Kolkata, +05:30, so local hours are not UTC's) and sends a batch of
readings whose ``energy`` increments are chosen by hand (docs/protocol.md,
"Energy"). The pages run in Debian's chromium; every number checked below is
worked out by hand from those increments.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from websockets.asyncio.client import connect

from tests.hub.dashboard_support import (
    ARTIFACTS,
    ColorScheme,
    ConsoleWatch,
    HubProcess,
    colours,
    contrast,
    css_rgb,
    launch_chromium,
    open_signed_in,
    relative_luminance,
    site_reading,
    wait_js,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

DEVICE_ID = "energy_site"
VIEWER_TOKEN = "show-me-energy"
ZONE = ZoneInfo("Asia/Kolkata")
MODULE_MARGIN = timedelta(minutes=5)  # this module's tests take about 30 s
QUANTITIES = ("pv_wh", "import_wh", "export_wh", "charge_wh", "discharge_wh", "house_wh")


def after_a_midnight_close_by() -> datetime:
    """Now in ZONE, past the local midnight when one is near: the module's pages read
    "today" when they load, and it must be the day its readings were made for."""
    now = datetime.now(ZONE)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if midnight - now < MODULE_MARGIN:
        time.sleep((midnight - now).total_seconds() + 1.0)
        now = datetime.now(ZONE)
    return now


def energy(span_s: float, *values: float, complete: bool = True) -> dict[str, Any]:
    """An ``energy`` object: span, then the quantities in the order of QUANTITIES."""
    return {"span_s": span_s, "complete": complete, **dict(zip(QUANTITIES, values, strict=True))}


@dataclass
class Site:
    hub: HubProcess
    browser: Browser
    day: datetime  # local midnight of the day with the hand-made readings (two days ago)
    today: datetime  # local midnight of today
    readings: list[dict[str, Any]]  # as sent

    def open(
        self, path: str, *, color_scheme: ColorScheme | None = None
    ) -> tuple[Page, ConsoleWatch]:
        url = f"{self.hub.http_url}{path}"
        return open_signed_in(self.browser, url, VIEWER_TOKEN, color_scheme=color_scheme)


def readings_of(day: datetime, today: datetime, now: datetime) -> list[dict[str, Any]]:
    """The hand-made readings: two hours of ``day`` and two readings of today so far."""
    elapsed = now - today
    made = [
        # Hour 10 of the day, measured whole: 1800 s + 1740 s, plus the longest span.
        (day + timedelta(hours=10, minutes=30), energy(1800, 1200, 0, 500, 300, 0, 400)),
        (day + timedelta(hours=10, minutes=59), energy(1740, 800, 0, 200, 100, 0, 500)),
        # Hour 19: one reading of 600 s, so the hour is incomplete.
        (day + timedelta(hours=19, minutes=30), energy(600, 0, 300, 0, 0, 250, 550)),
        # Today, before now.
        (today + elapsed / 3, energy(60, 1500, 100, 900, 100, 0, 600)),
        (today + elapsed * 2 / 3, energy(60, 500, 0, 100, 0, 0, 400)),
    ]
    readings = []
    for seq, (ts, increments) in enumerate(made, start=1):
        reading = site_reading(ts, seq=seq)
        reading["energy"] = increments
        readings.append(reading)
    return readings


async def _deliver(url: str, token: str, readings: list[dict[str, Any]]) -> None:
    """Name the site's zone in a health frame, then send the readings as a batch; wait for acks."""
    health = {
        "type": "health",
        "interval_s": 1.0,
        "timezone": "Asia/Kolkata",
        "devices": [
            {"name": "meter", "role": "grid", "state": "ok", "for_s": 5.0, "error": ""},
        ],
    }
    wanted = {int(r["seq"]) for r in readings}
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(json.dumps(health))
        await ws.send(json.dumps({"type": "batch", "items": readings}))
        async with asyncio.timeout(30):
            while wanted:
                frame = json.loads(await ws.recv())
                assert frame.get("type") != "error", frame
                if frame.get("type") == "ack":
                    for first, last in frame["ranges"]:
                        wanted -= set(range(first, last + 1))


def deliver(url: str, token: str, readings: list[dict[str, Any]]) -> None:
    """On a thread of its own: Playwright's sync API holds this thread's event loop."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_deliver(url, token, readings))
        except BaseException as err:
            failure.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


@pytest.fixture(scope="module")
def site(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("dashboard-energy")
    hub = HubProcess(
        port=free_port(),
        database=postgres_url,
        data_dir=work / "ems-data",
        viewer_token=VIEWER_TOKEN,
        log_path=work / "hub.log",
    )
    token = hub.add_token(DEVICE_ID)
    hub.start()
    now = after_a_midnight_close_by()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day = (today - timedelta(days=2)).replace(tzinfo=None).replace(tzinfo=ZONE)
    readings = readings_of(day, today, now)
    deliver(f"{hub.ws_url}/ws/device/{DEVICE_ID}", token, readings)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield Site(hub, browser, day, today, readings)
        finally:
            browser.close()
            hub.stop()


def loaded(page: Page, anchor: str, view: str) -> None:
    """Wait until the energy panel shows ``view`` around the local date ``anchor``."""
    wait_js(
        page,
        "(() => { const s = document.getElementById('energy');"
        f" return s.dataset.state === 'ready' && s.dataset.anchor === {json.dumps(anchor)}"
        f" && s.dataset.view === {json.dumps(view)}; }})()",
    )


def column(page: Page, start_prefix: str) -> dict[str, Any]:
    """The bars of the interval whose local start begins with ``start_prefix``."""
    found: dict[str, Any] = page.evaluate(
        """prefix => {
            const col = [...document.querySelectorAll('#energy-bars .energy-column')]
                .find(c => c.dataset.start.startsWith(prefix));
            if (!col) return null;
            const bars = {};
            for (const bar of col.querySelectorAll('.energy-bar')) {
                bars[bar.dataset.quantity] = bar.dataset.wh === '' ? null : Number(bar.dataset.wh);
            }
            return {complete: col.dataset.complete, bars};
        }""",
        start_prefix,
    )
    assert found is not None, f"no column starting {start_prefix}"
    return found


def totals(page: Page) -> dict[str, str]:
    shown: dict[str, str] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#energy-totals .energy-total')]"
        ".map(row => [row.dataset.total, row.querySelector('dd').textContent]))"
    )
    return shown


def test_the_day_bars_totals_and_flow_match_the_readings(site: Site) -> None:
    page, watch = site.open(f"/devices/{DEVICE_ID}")
    today = site.today.date().isoformat()
    day = site.day.date().isoformat()
    loaded(page, today, "day")
    assert page.locator("#energy").get_attribute("data-zone") == "Asia/Kolkata"
    assert page.locator("#energy-zone").inner_text() == "Asia/Kolkata"
    # Nothing measured tomorrow: no way forward from today.
    assert page.locator("#energy-next").is_disabled()

    page.click("#energy-prev")
    page.click("#energy-prev")
    loaded(page, day, "day")
    assert page.locator("#energy").get_attribute("data-start") == f"{day}T00:00:00+05:30"
    assert page.locator("#energy-bars .energy-column").count() == 24
    ten = column(page, f"{day}T10:")
    assert ten == {
        "complete": "true",
        "bars": {
            "pv_wh": 2000.0,
            "import_wh": 0.0,
            "discharge_wh": 0.0,
            "house_wh": 900.0,
            "export_wh": 700.0,
            "charge_wh": 400.0,
        },
    }
    nineteen = column(page, f"{day}T19:")
    assert nineteen["complete"] == "false"  # 600 s of a 3600 s hour measured
    assert nineteen["bars"]["discharge_wh"] == 250.0
    assert nineteen["bars"]["import_wh"] == 300.0
    # An hour without readings: unknown, and marked incomplete.
    assert column(page, f"{day}T03:") == {
        "complete": "false",
        "bars": {q: None for q in QUANTITIES},
    }
    assert page.locator("#energy-bars .energy-incomplete").count() == 23

    assert totals(page) == {
        "pv_wh": "2.00 kWh",
        "house_wh": "1.45 kWh",
        "import_wh": "0.30 kWh",
        "export_wh": "0.70 kWh",
        "charge_wh": "0.40 kWh",
        "discharge_wh": "0.25 kWh",
        "self_consumption_pct": "65.0%",  # (2000 - 700) / 2000
        "autarky_pct": "79.3%",  # (1450 - 300) / 1450
    }
    # Where the PV went and where the house's energy came from, hour by hour:
    # hour 10: PV 2000 = battery 400 + grid 700 + house 900; hour 19: the house's
    # 550 = battery 250 + grid 300.
    flow = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#energy-flow .share-row')].map(row =>"
        " [row.dataset.share, Object.fromEntries([...row.querySelectorAll('.share-legend li')]"
        ".map(li => [li.dataset.part, li.querySelector('strong').textContent]))]))"
    )
    assert flow == {
        "pv": {"house": "0.90 kWh", "battery": "0.40 kWh", "grid": "0.70 kWh"},
        "house": {"pv": "0.90 kWh", "battery": "0.25 kWh", "grid": "0.30 kWh"},
    }
    assert not page.locator("#energy-next").is_disabled()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#energy").screenshot(path=str(ARTIFACTS / "energy.png"))

    # The day before has no readings: unknown, never 0 kWh.
    page.click("#energy-prev")
    before = (site.day - timedelta(days=1)).date().isoformat()
    loaded(page, before, "day")
    assert set(totals(page).values()) == {"—"}
    assert page.locator("#energy-bars .energy-incomplete").count() == 24
    known = page.evaluate(
        "[...document.querySelectorAll('#energy-flow .share-row')].map(r => r.dataset.known)"
    )
    assert known == ["false", "false"]
    assert set(page.locator("#energy-flow strong").all_inner_texts()) == {"—"}

    page.click("#energy-today")
    loaded(page, today, "day")
    assert totals(page)["pv_wh"] == "2.00 kWh"  # 1500 + 500 today
    assert watch.problems() == []
    page.context.close()


def test_week_month_and_year_sum_the_days(site: Site) -> None:
    page, watch = site.open(f"/devices/{DEVICE_ID}")
    today = site.today.date()
    day = site.day.date()
    loaded(page, today.isoformat(), "day")
    page.click("#energy-prev")
    page.click("#energy-prev")
    loaded(page, day.isoformat(), "day")

    page.click('#energy .segmented button[data-view="week"]')
    loaded(page, day.isoformat(), "week")
    monday = day - timedelta(days=day.weekday())
    assert page.locator("#energy").get_attribute("data-start") == f"{monday}T00:00:00+05:30"
    assert page.locator("#energy-bars .energy-column").count() == 7
    bars = column(page, day.isoformat())["bars"]
    assert (bars["pv_wh"], bars["house_wh"], bars["export_wh"]) == (2000.0, 1450.0, 700.0)

    page.click('#energy .segmented button[data-view="month"]')
    loaded(page, day.isoformat(), "month")
    assert page.locator("#energy").get_attribute("data-start") == (
        f"{day.replace(day=1)}T00:00:00+05:30"
    )
    assert column(page, day.isoformat())["bars"]["pv_wh"] == 2000.0

    page.click('#energy .segmented button[data-view="year"]')
    loaded(page, day.isoformat(), "year")
    assert page.locator("#energy-bars .energy-column").count() == 12
    same_month = (today.year, today.month) == (day.year, day.month)
    month_pv = column(page, day.strftime("%Y-%m"))["bars"]["pv_wh"]
    assert month_pv == (4000.0 if same_month else 2000.0)
    page.click("#energy-prev")
    loaded(page, f"{day.year - 1}-01-01", "year")
    assert page.locator("#energy-range").inner_text() == str(day.year - 1)
    assert watch.problems() == []
    page.context.close()


def test_the_csv_links_download_the_range_shown(site: Site) -> None:
    page, watch = site.open(f"/devices/{DEVICE_ID}")
    today = site.today.date().isoformat()
    day = site.day.date().isoformat()
    loaded(page, today, "day")
    page.click("#energy-prev")
    page.click("#energy-prev")
    loaded(page, day, "day")

    with page.expect_download() as download:
        page.click("#energy-csv")
    path = download.value.path()
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert len(rows) == 24
    ten = next(row for row in rows if row["start"].startswith(f"{day}T10:"))
    assert (ten["pv_wh"], ten["house_wh"], ten["complete"]) == ("2000.0", "900.0", "true")

    with page.expect_download() as download:
        page.click("#readings-csv")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    # The day's three readings, oldest first, with their increments.
    assert [row["energy.pv_wh"] for row in rows] == ["1200.0", "800.0", "0.0"]
    assert [row["seq"] for row in rows] == ["1", "2", "3"]
    # The links carry no token: the session cookie goes along by itself, and
    # without it (another browser) the same links are refused.
    stranger = site.browser.new_context()
    for link in ("#energy-csv", "#readings-csv"):
        href = page.locator(link).get_attribute("href") or ""
        assert VIEWER_TOKEN not in href
        assert stranger.request.get(f"{site.hub.http_url}{href}").status == 401
        with_token = stranger.request.get(
            f"{site.hub.http_url}{href}", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}
        )
        assert with_token.status == 200
    stranger.close()
    assert watch.problems() == []
    page.context.close()


def test_the_fleet_card_shows_todays_energy(site: Site) -> None:
    page, watch = site.open("/")
    card = f'.device-card[data-device-id="{DEVICE_ID}"]'
    wait_js(
        page,
        f"document.querySelector({card + ' .today-energy'!r})?.dataset.state === 'ready'",
    )
    shown = page.evaluate(
        f"Object.fromEntries([...document.querySelectorAll({card + ' .today-value'!r})]"
        ".map(row => [row.dataset.energy, row.querySelector('dd').textContent]))"
    )
    # Today's two readings: PV 1500 + 500, house 600 + 400, import 100, export 900 + 100.
    assert shown == {
        "pv_wh": "2.00 kWh",
        "house_wh": "1.00 kWh",
        "import_wh": "0.10 kWh",
        "export_wh": "1.00 kWh",
        "self_consumption_pct": "50%",  # (2000 - 1000) / 2000
        "autarky_pct": "90%",  # (1000 - 100) / 1000
    }
    assert page.locator(f"{card} .today-energy").get_attribute("data-zone") == "Asia/Kolkata"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(card).screenshot(path=str(ARTIFACTS / "energy-card.png"))
    assert watch.problems() == []
    page.context.close()


def chart_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        "({range: emsDashboard.range(), windowMs: emsDashboard.windowMs(),"
        " fills: emsDashboard.fills(), ts: emsDashboard.points().map(p => p.ts)})"
    )
    return state


def pick_range(page: Page, name: str) -> dict[str, Any]:
    """Click a range of the power chart; its state once its fetch is drawn."""
    before = chart_state(page)["fills"]
    page.click(f'#chart-range button[data-range="{name}"]')
    wait_js(page, f"emsDashboard.range() === {name!r} && emsDashboard.fills() > {before}")
    return chart_state(page)


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def test_the_range_picker_changes_the_power_charts_span(site: Site) -> None:
    page, watch = site.open(f"/devices/{DEVICE_ID}")
    wait_js(page, "window.emsDashboard && emsDashboard.fills() > 0")
    assert chart_state(page)["windowMs"] == 3_600_000
    now = datetime.now(ZONE)

    week = pick_range(page, "week")
    assert week["windowMs"] == 7 * 86_400_000
    assert page.locator("#chart-heading").inner_text() == "Power, last 7 days"
    # 30-minute buckets (aligned on a Monday's 00:00 UTC; Kolkata is +05:30, so on
    # its half hours): the day's readings at 10:30 and 10:59 share one, 19:30 has its own.
    day_buckets = {
        ms(site.day + timedelta(hours=10, minutes=30)),
        ms(site.day + timedelta(hours=19, minutes=30)),
    }
    assert day_buckets <= set(week["ts"]), week["ts"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#chart-panel").screenshot(path=str(ARTIFACTS / "power-week.png"))

    day = pick_range(page, "day")
    assert day["windowMs"] == 86_400_000
    assert page.locator("#chart-heading").inner_text() == "Power, last 24 hours"
    assert not day_buckets & set(day["ts"])  # more than 24 hours ago: out of the span
    oldest = ms(now - timedelta(hours=24, minutes=5))
    assert min(day["ts"]) >= oldest
    # Today's readings, each in its 5-minute bucket (aligned on UTC's five minutes).
    today_ts = [ms(datetime.fromisoformat(r["ts"])) for r in site.readings[3:]]
    assert {ts - ts % 300_000 for ts in today_ts} <= set(day["ts"]), day["ts"]

    hour = pick_range(page, "hour")
    assert hour["windowMs"] == 3_600_000
    assert all(ts >= ms(now - timedelta(hours=1, minutes=1)) for ts in hour["ts"])

    # The chart's CSV is the readings of its span: a week holds all five.
    pick_range(page, "week")
    with page.expect_download() as download:
        page.click("#chart-csv")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    assert [row["seq"] for row in rows] == ["1", "2", "3", "4", "5"]
    assert [row["energy.house_wh"] for row in rows] == ["400.0", "500.0", "550.0", "600.0", "400.0"]
    assert watch.problems() == []
    page.context.close()


def test_the_ranges_and_the_flow_rules_on_plain_values(site: Site) -> None:
    """energy.js's pure helpers, in the page's own browser (ES modules, the CSP's 'self')."""
    page, watch = site.open(f"/devices/{DEVICE_ID}")
    results = page.evaluate(
        """async () => {
          const e = await import("/static/js/energy.js");
          const flow = e.energyFlow([
            // PV short of export + charge: the export is PV first, then the charge.
            {pv_wh: 1000, export_wh: 700, charge_wh: 500, house_wh: 300, import_wh: 300,
             discharge_wh: 0},
            // Unknown quantities count as nothing.
            {pv_wh: null, export_wh: null, charge_wh: null, house_wh: 200, import_wh: null,
             discharge_wh: 150},
          ]);
          return {
            week: e.rangeParams("week", "2026-12-03"),
            weekOfSunday: e.rangeParams("week", "2026-12-06"),
            month: e.rangeParams("month", "2026-12-31"),
            year: e.rangeParams("year", "2026-03-29"),
            day: e.rangeParams("day", "2026-03-29"),
            nextMonth: e.stepAnchor("month", "2026-01-31", 1),
            previousDay: e.stepAnchor("day", "2026-03-01", -1),
            nextWeek: e.stepAnchor("week", "2026-12-28", 1),
            previousYear: e.stepAnchor("year", "2026-12-03", -1),
            today: e.todayIn("Pacific/Kiritimati", new Date("2026-12-03T23:00:00Z")),
            kwh: [e.formatKwh(1234.5), e.formatKwh(null), e.formatKwh(0)],
            flow,
          };
        }"""
    )
    assert results["week"] == {"start": "2026-11-30", "end": "2026-12-06", "period": "day"}
    assert results["weekOfSunday"] == results["week"]
    assert results["month"] == {"start": "2026-12", "period": "day"}
    assert results["year"] == {"start": "2026", "period": "month"}
    assert results["day"] == {"start": "2026-03-29", "period": "hour"}
    assert results["nextMonth"] == "2026-02-01"
    assert results["previousDay"] == "2026-02-28"
    assert results["nextWeek"] == "2027-01-04"
    assert results["previousYear"] == "2025-01-01"
    assert results["today"] == "2026-12-04"  # UTC+14
    assert results["kwh"] == ["1.23 kWh", "—", "0.00 kWh"]
    assert results["flow"] == {
        "pv": {"house": 0, "battery": 300, "grid": 700, "total": 1000, "known": True},
        "house": {"pv": 0, "battery": 150, "grid": 300, "total": 500, "known": True},
    }
    assert watch.problems() == []
    page.context.close()


# What the energy panel draws, each checked against the background it is drawn
# on (WCAG 2.x): text 4.5:1 (1.4.3), bars, flow parts and the axis 3:1 (1.4.11).
PANEL_TEXT = (
    ("#energy-heading", "color"),
    ("#energy-range", "color"),
    ('#energy .segmented button[aria-pressed="true"]', "color"),
    ('#energy .segmented button[aria-pressed="false"]', "color"),
    ("#energy-today", "color"),
    ("#energy .energy-legend li", "color"),
    ("#energy .energy-foot", "color"),
    ("#energy-zone", "color"),
    ("#energy-bars .energy-tick", "fill"),
    ("#energy-bars .energy-incomplete", "fill"),
    ("#energy-totals .energy-total dt", "color"),
    ("#energy-totals .energy-total dd", "color"),
    ("#energy-flow .share-total", "color"),
    ("#energy-flow .share-legend li", "color"),
    ("#energy-flow .share-legend strong", "color"),
    ("#energy-csv", "color"),
)
PANEL_GRAPHICS = (
    *((f'#energy-bars .energy-bar[data-quantity="{q}"]', "fill") for q in QUANTITIES),
    *(
        (f'#energy-flow [data-share="{row}"] .share[data-part="{part}"]', "background")
        for row, parts in (
            ("pv", ("house", "battery", "grid")),
            ("house", ("pv", "battery", "grid")),
        )
        for part in parts
    ),
    ("#energy-bars .energy-axis", "stroke"),
    ('#energy .segmented button[aria-pressed="true"]', "background"),  # the chosen view
)
CARD_TEXT = (
    ".today-energy dt",
    ".today-energy dd",
)


def test_the_energy_panel_follows_the_colour_scheme_with_readable_contrast(site: Site) -> None:
    """In chromium emulating a dark and a light colour scheme: the computed colours of
    the panel's real elements, each ratio worked out here from those colours."""
    day = site.day.date().isoformat()
    seen: dict[str, dict[str, str]] = {}
    for scheme in ("light", "dark"):
        page, watch = site.open(f"/devices/{DEVICE_ID}", color_scheme=scheme)
        loaded(page, site.today.date().isoformat(), "day")
        page.click("#energy-prev")
        page.click("#energy-prev")
        loaded(page, day, "day")  # hour 10 complete, hour 19 incomplete: every quantity drawn
        dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        assert dark is (scheme == "dark")
        panel = css_rgb(colours(page, "#energy-heading")[1])[0]
        # The panel itself turned: near black in the dark, white in the light.
        assert (relative_luminance(panel) < 0.05) if dark else (relative_luminance(panel) > 0.9)
        ratios = {
            selector: round(contrast(page, selector, paint), 2) for selector, paint in PANEL_TEXT
        }
        low = {selector: ratio for selector, ratio in ratios.items() if ratio < 4.5}
        assert low == {}, f"{scheme}: text under 4.5:1: {low}"
        ratios = {
            selector: round(contrast(page, selector, paint), 2)
            for selector, paint in PANEL_GRAPHICS
        }
        low = {selector: ratio for selector, ratio in ratios.items() if ratio < 3}
        assert low == {}, f"{scheme}: bars under 3:1: {low}"
        # Each quantity keeps a colour of its own.
        fills = [colours(page, selector, paint)[0] for selector, paint in PANEL_GRAPHICS[:6]]
        assert len(set(fills)) == len(QUANTITIES), fills
        seen[scheme] = {
            selector: colours(page, selector, paint)[0] for selector, paint in PANEL_GRAPHICS
        }
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator("#energy").screenshot(path=str(ARTIFACTS / f"energy-{scheme}.png"))
        assert watch.problems() == []
        page.context.close()

        fleet, watch = site.open("/", color_scheme=scheme)
        card = f'.device-card[data-device-id="{DEVICE_ID}"]'
        wait_js(
            fleet, f"document.querySelector({card + ' .today-energy'!r})?.dataset.state === 'ready'"
        )
        ratios = {
            selector: round(contrast(fleet, f"{card} {selector}"), 2) for selector in CARD_TEXT
        }
        assert all(ratio >= 4.5 for ratio in ratios.values()), (scheme, ratios)
        assert watch.problems() == []
        fleet.context.close()
    # The bars and the flow follow the theme: none keeps its light colour in the dark.
    same = [
        selector for selector in seen["dark"] if seen["dark"][selector] == seen["light"][selector]
    ]
    assert same == [], same
