"""The built-in dashboard in a real browser, against a real hub with a device streaming.

One hub process (``ems hub serve`` with a viewer token, on PostgreSQL), one
device (a WebSocket publisher on the device door: first a batch of history,
then live readings), and Debian's chromium driven by Playwright. The tests run
in file order and share the site; each opens its own pages and leaves the
device streaming.

Screenshots go to ``test-artifacts/dashboard/``; with
``EMS_UPDATE_SCREENSHOTS=1`` they are also copied to ``docs/screenshots/``,
except the README's pictures (``fleet.png``, ``device.png``, ``energy.png``,
``energy-dark.png``): those show ``ems demo`` (``scripts/screenshots.py``), not
this test's made-up site.
"""

from __future__ import annotations

import http.client
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, sync_playwright

from tests.hub.dashboard_support import (
    DESKTOP,
    NETWORK_FAILURE,
    ConsoleWatch,
    HubProcess,
    Publisher,
    history_readings,
    hub_stopped,
    launch_chromium,
    screenshot,
    send_history,
    sign_in,
    wait_js,
    watch_console,
)
from tests.support.polling import wait_until
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

DEVICE_ID = "ems_001"
VIEWER_TOKEN = "let-me-look"
HISTORY_COUNT = 90  # readings over the last 45 minutes, one every 30 s
HISTORY_STEP = timedelta(seconds=30)

PHONE: ViewportSize = {"width": 390, "height": 844}


# What the browser reports while a page is signed out: the refused API call or
# socket, and the page's question to /api/session. Nothing else may go wrong.
SIGNED_OUT = re.compile(r"status of 401|WebSocket connection to '[^']+' failed")


@dataclass
class Site:
    hub: HubProcess
    device: Publisher
    history: list[dict[str, Any]]
    browser: Browser
    watches: dict[int, ConsoleWatch]
    urls: dict[int, list[str]]

    def url(self, path: str) -> str:
        return f"{self.hub.http_url}{path}"

    def open(self, path: str, *, viewport: ViewportSize = DESKTOP, sign_in: bool = True) -> Page:
        """A page in a fresh browser context; signed in through the page's own form."""
        context = self.browser.new_context(viewport=viewport)
        page = context.new_page()
        watch = watch_console(page)
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        page.on("websocket", lambda socket: urls.append(socket.url))
        self.watches[id(page)] = watch
        self.urls[id(page)] = urls
        answer = page.goto(self.url(path))
        assert answer is not None
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        if sign_in:
            self.sign_in(page)
        return page

    def sign_in(self, page: Page, token: str = VIEWER_TOKEN) -> None:
        sign_in(page, token)
        watch = self.watches[id(page)]
        assert watch.problems(allow=SIGNED_OUT) == [], watch.errors
        watch.errors.clear()  # the signed-out phase, as expected

    def problems(self, page: Page, *, allow_network_failures: bool = False) -> list[str]:
        """Console errors and uncaught exceptions of the page so far."""
        watch = self.watches[id(page)]
        return watch.problems(allow=NETWORK_FAILURE if allow_network_failures else None)

    def close(self, page: Page, *, allow_network_failures: bool = False) -> None:
        """Close the page; it must not have logged an error nor put the token in a URL."""
        problems = self.problems(page, allow_network_failures=allow_network_failures)
        urls = self.urls.pop(id(page))
        del self.watches[id(page)]
        page.context.close()
        assert problems == [], f"console errors: {problems}"
        assert urls, "no request was seen"
        assert not [url for url in urls if VIEWER_TOKEN in url]


def points(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.evaluate("window.emsDashboard.points()")
    return result


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def site(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory, playwright: Playwright
) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("dashboard")
    hub = HubProcess(
        port=free_port(),
        database=postgres_url,
        data_dir=work / "ems-data",
        viewer_token=VIEWER_TOKEN,
        log_path=work / "hub.log",
    )
    token = hub.add_token(DEVICE_ID)
    hub.start()
    device_url = f"{hub.ws_url}/ws/device/{DEVICE_ID}"
    history = history_readings(HISTORY_COUNT, HISTORY_STEP)
    send_history(device_url, token, history)
    device = Publisher(device_url, token)
    device.start()
    browser = launch_chromium(playwright)
    try:
        wait_until(device.connected.is_set, 10, "the device to connect")
        yield Site(hub, device, history, browser, {}, {})
    finally:
        browser.close()
        device.close()
        hub.stop()


def test_fleet_page_lists_the_device_with_live_headline_numbers(site: Site) -> None:
    page = site.open("/")
    card = page.locator(f'.device-card[data-device-id="{DEVICE_ID}"]')
    card.wait_for()
    wait_js(
        page,
        f"document.querySelector('.device-card[data-device-id=\"{DEVICE_ID}\"]')"
        ".dataset.online === 'true'",
    )
    assert card.locator(".pill").inner_text() == "online"
    first_ts = card.get_attribute("data-ts")
    # Live: the card follows the readings without a reload.
    wait_js(
        page,
        f"document.querySelector('.device-card[data-device-id=\"{DEVICE_ID}\"]').dataset.ts"
        f" !== {json.dumps(first_ts)}",
        timeout=10_000,
    )
    for metric in ("solar", "soc", "grid", "house"):
        assert card.locator(f'[data-metric="{metric}"] dd').inner_text() != "—"
    assert "export" in card.locator('[data-metric="grid"] dd').inner_text()
    assert "s ago" in card.locator(".seen").inner_text()
    # The link carries no token: the session cookie goes along by itself.
    href = card.locator("a.card-link").get_attribute("href")
    assert href == f"/devices/{DEVICE_ID}"
    with page.expect_navigation():
        card.locator("a.card-link").click()
    page.wait_for_selector('#connection[data-state="live"]')
    screenshot(page, "fleet")
    site.close(page)


def test_device_page_backfills_history_before_the_first_live_point(site: Site) -> None:
    page = site.open(f"/devices/{DEVICE_ID}")
    wait_js(
        page,
        "window.emsDashboard && window.emsDashboard.points().some(p => p.source === 'live')",
        timeout=15_000,
    )
    chart = points(page)
    history = [p for p in chart if p["source"] == "history"]
    live = [p for p in chart if p["source"] == "live"]
    # 45 minutes of history at one reading per 30 s: one bucket per minute.
    assert len(history) >= 40, len(history)
    seam = page.evaluate("window.emsDashboard.seamTs()")
    assert seam == max(p["ts"] for p in history)
    assert page.evaluate("window.emsDashboard.historyBeforeFirstLive()") == len(history)
    # The seam: every live point is newer than the history, none is drawn twice.
    assert min(p["ts"] for p in live) > seam
    stamps = [p["ts"] for p in chart]
    assert stamps == sorted(set(stamps))
    site.close(page)


def test_device_page_shows_the_values_sent(site: Site) -> None:
    page = site.open(f"/devices/{DEVICE_ID}")
    page.wait_for_selector('[data-field="grid.power_w"]')
    site.device.freeze()
    try:
        sent = site.device.last_sent()
        wait_js(
            page,
            f"document.getElementById('values-ts').dataset.ts === {sent['ts']!r}",
            timeout=10_000,
        )
        for section in ("inverter", "grid", "solar", "battery", "extra"):
            for name, value in sent[section].items():
                row = page.locator(f'[data-field="{section}.{name}"]')
                shown = row.get_attribute("data-value")
                assert shown is not None, f"{section}.{name} is not shown"
                assert _same(json.loads(shown), value), (section, name, shown, value)
                # text_content: Extra's groups are folded until opened (inner_text is "").
                assert (row.locator("dd").text_content() or "").strip() != ""
        # Units are shown with the values.
        assert page.locator('[data-field="grid.voltage_v"] dd').inner_text() == "230.8 V"
        assert page.locator('[data-field="battery.soc_pct"] dd').inner_text().endswith("%")
        assert page.locator('[data-field="inverter.ac_frequency_hz"] dd').inner_text() == (
            "50.01 Hz"
        )
        # House load = grid import + inverter output (docs/protocol.md, "A reading").
        house = sent["grid"]["power_w"] + sent["inverter"]["ac_power_w"]
        shown_house = page.locator('[data-field="derived.house_w"]').get_attribute("data-value")
        assert shown_house is not None
        assert math.isclose(float(shown_house), house, abs_tol=1e-6)
        # The flow: the site exports (grid line away from the junction), the battery charges.
        assert page.locator('[data-flow="grid"]').get_attribute("data-direction") == "reverse"
        assert page.locator('[data-note="grid"]').text_content() == "exporting"
        assert page.locator('[data-flow="battery"]').get_attribute("data-direction") == "reverse"
        assert page.locator('[data-note="battery"]').text_content() == "charging"
        assert page.locator('[data-flow="solar"]').get_attribute("data-direction") == "forward"
        assert page.locator('[data-flow="house"]').get_attribute("data-direction") == "forward"
        soc = sent["battery"]["soc_pct"]
        assert page.locator('[data-value="soc"]').text_content() == f"{soc:.1f}%"
        help_text = page.locator("details.help").text_content() or ""
        assert "house = grid.power_w + inverter.ac_power_w" in help_text
    finally:
        site.device.thaw()
    site.close(page)


def test_the_chart_grows_live_without_double_points(site: Site) -> None:
    page = site.open(f"/devices/{DEVICE_ID}")
    wait_js(page, "window.emsDashboard.points().some(p => p.source === 'live')")
    before = len(points(page))
    wait_js(page, f"window.emsDashboard.points().length >= {before + 4}", timeout=15_000)
    stamps = [p["ts"] for p in points(page)]
    assert stamps == sorted(set(stamps))
    screenshot(page, "device")
    site.close(page)


def test_offline_and_back_is_shown(site: Site) -> None:
    fleet = site.open("/")
    page = site.open(f"/devices/{DEVICE_ID}")
    page.wait_for_selector('#status[data-online="online"]')
    site.device.pause()
    try:
        page.wait_for_selector('#status[data-online="offline"]', timeout=10_000)
        banner = page.locator("#offline-banner")
        assert banner.is_visible()
        assert "offline" in banner.inner_text()
        # The flow stands still: it shows the last values, not a live flow.
        assert page.locator("#flow").get_attribute("data-stale") == "true"
        # The last values stay on screen.
        assert page.locator('[data-field="grid.power_w"]').count() == 1
        fleet.wait_for_selector(
            f'.device-card[data-device-id="{DEVICE_ID}"][data-online="false"]', timeout=10_000
        )
        screenshot(page, "device-offline")
    finally:
        site.device.resume()
    page.wait_for_selector('#status[data-online="online"]', timeout=10_000)
    assert not page.locator("#offline-banner").is_visible()
    fleet.wait_for_selector(
        f'.device-card[data-device-id="{DEVICE_ID}"][data-online="true"]', timeout=10_000
    )
    site.close(page)
    site.close(fleet)


def test_a_hub_restart_is_survived(site: Site) -> None:
    fleet = site.open("/")
    page = site.open(f"/devices/{DEVICE_ID}")
    wait_js(page, "window.emsDashboard.points().some(p => p.source === 'live')")
    page.wait_for_selector('#connection[data-state="live"]')
    with hub_stopped(site.hub):
        page.wait_for_selector('#connection[data-state="waiting"]', timeout=10_000)
        assert page.locator("#status").get_attribute("data-online") == "unknown"
        stopped_at = max(p["ts"] for p in points(page))
    # Same port, same database: the page finds the hub again by itself.
    page.wait_for_selector('#connection[data-state="live"]', timeout=30_000)
    page.wait_for_selector('#status[data-online="online"]', timeout=30_000)
    wait_js(
        page,
        f"window.emsDashboard.points().some(p => p.source === 'live' && p.ts > {stopped_at})",
        timeout=30_000,
    )
    stamps = [p["ts"] for p in points(page)]
    assert stamps == sorted(set(stamps))
    fleet.wait_for_selector(
        f'.device-card[data-device-id="{DEVICE_ID}"][data-online="true"]', timeout=30_000
    )
    fleet.wait_for_selector('#connection[data-state="live"]', timeout=30_000)
    site.close(page, allow_network_failures=True)
    site.close(fleet, allow_network_failures=True)


def test_the_device_page_fits_a_phone(site: Site) -> None:
    page = site.open(f"/devices/{DEVICE_ID}", viewport=PHONE)
    wait_js(page, "window.emsDashboard.points().some(p => p.source === 'live')")
    page.wait_for_selector('[data-field="grid.power_w"]')
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow} px wider than the phone"
    flow = page.locator("#flow").bounding_box()
    assert flow is not None
    assert flow["width"] <= PHONE["width"]
    screenshot(page, "device-phone")
    site.close(page)
    fleet = site.open("/", viewport=PHONE)
    fleet.locator(f'.device-card[data-device-id="{DEVICE_ID}"]').wait_for()
    assert fleet.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    site.close(fleet)


@pytest.mark.parametrize("path", ["/", f"/devices/{DEVICE_ID}"])
def test_without_the_viewer_token_the_page_asks_for_it(site: Site, path: str) -> None:
    page = site.open(path, sign_in=False)
    page.locator("#sign-in").wait_for(timeout=15_000)
    badge = page.locator("#connection")
    assert badge.get_attribute("data-state") == "sign-in"
    assert badge.inner_text() == "viewer token needed"
    # It stays a question: no "hub unreachable, retrying" loop behind the form.
    page.wait_for_timeout(2500)
    assert badge.get_attribute("data-state") == "sign-in"
    assert page.locator(".device-card").count() == 0
    assert not page.evaluate("Boolean(window.emsDashboard?.latestTs())")
    page.fill("#viewer-token", "not-the-token")
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector(".sign-in-message:text('Wrong token.')")
    screenshot(page, f"sign-in{'-device' if path != '/' else ''}")
    assert site.problems(page), "the hub served data without the viewer token"
    assert site.problems(page) == [text for text in site.problems(page) if SIGNED_OUT.search(text)]
    site.sign_in(page)
    page.wait_for_selector('#connection[data-state="live"]', timeout=15_000)
    assert page.locator("#sign-in").count() == 0
    assert page.url == site.url(path)
    site.close(page)


def test_an_old_link_with_the_token_still_works_and_loses_it(site: Site) -> None:
    page = site.open(f"/?token={VIEWER_TOKEN}", sign_in=False)
    page.locator(f'.device-card[data-device-id="{DEVICE_ID}"]').wait_for(timeout=15_000)
    page.wait_for_selector('#connection[data-state="live"]', timeout=15_000)
    assert page.url == site.url("/")  # out of the address bar, and so out of history
    urls = site.urls[id(page)]
    assert VIEWER_TOKEN in urls[0]  # the link as given; nothing after it carries the token
    site.urls[id(page)] = urls[1:]
    site.close(page)


def _same(shown: Any, sent: Any) -> bool:
    if isinstance(sent, list):
        return isinstance(shown, list) and all(
            _same(a, b) for a, b in zip(shown, sent, strict=True)
        )
    if isinstance(sent, int | float) and not isinstance(sent, bool):
        return isinstance(shown, int | float) and math.isclose(shown, sent, rel_tol=0, abs_tol=0)
    return bool(shown == sent)


def test_the_pages_and_only_the_static_files_are_served(site: Site) -> None:
    def get(path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", site.hub.port, timeout=10)
        try:
            connection.request("GET", path)  # sent as is: no client-side ".." folding
            answer = connection.getresponse()
            answer.read()
            return answer.status, answer.getheader("content-type") or ""
        finally:
            connection.close()

    assert get("/") == (200, "text/html; charset=utf-8")
    assert get(f"/devices/{DEVICE_ID}") == (200, "text/html; charset=utf-8")
    status, kind = get("/static/js/device.js")
    assert status == 200
    assert "javascript" in kind
    assert get("/static/../dashboard.py")[0] == 404
    assert get("/static/%2e%2e/dashboard.py")[0] == 404
    assert get("/static/js/../../runtime.py")[0] == 404
    assert get("/static/no-such-file.js")[0] == 404
    assert get("/devices/not%20a%20device%20id")[0] == 404
