"""The dashboard tells live values from frozen ones: a real site end to end, in a real browser.

``ems sim`` serves the simulated site over Modbus TCP, ``ems edge run`` polls
it and streams to ``ems hub serve`` (embedded SQLite) through a TCP proxy the
test can cut, and Debian's chromium shows the pages (docs/protocol.md,
"Device health" and the ``history`` frame).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from edge.demo import simulated_site_config
from tests.edge.hubproc import EMS, REPO, HubProcess, running_hub
from tests.hub.dashboard_support import (
    DESKTOP,
    ColorScheme,
    ConsoleWatch,
    contrast,
    launch_chromium,
    wait_js,
    watch_console,
)
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.tcp_proxy import ThreadedTcpProxy

pytestmark = pytest.mark.slow

DEVICE_ID = "site_health"
INTERVAL_S = 1.0  # the agent's sampling interval
CARD = f'.device-card[data-device-id="{DEVICE_ID}"]'


@dataclass
class SimProcess:
    """``ems sim`` on a fixed port, so it can be stopped and started again."""

    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*EMS, "sim", "--tcp", f"127.0.0.1:{self.port}"],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def listening() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, self.text()
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 30, "the simulator to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@dataclass
class Site:
    hub: HubProcess
    sim: SimProcess
    proxy: ThreadedTcpProxy
    browser: Browser
    agent_log: Path

    def open(
        self, path: str, *, color_scheme: ColorScheme | None = None
    ) -> tuple[Page, ConsoleWatch]:
        page = self.browser.new_page(viewport=DESKTOP, color_scheme=color_scheme)
        watch = watch_console(page)
        page.goto(f"{self.hub.http}{path}")
        return page, watch


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("health")
    with (
        running_hub(work / "hub") as hub,
        ThreadedTcpProxy("127.0.0.1", hub.port) as proxy,
        sync_playwright() as playwright,
    ):
        token = hub.token_add(DEVICE_ID)
        sim = SimProcess(free_port(), work / "sim.log")
        sim.start()
        config = work / "edge.toml"
        config.write_text(
            simulated_site_config(
                device_id=DEVICE_ID,
                hub_url=f"ws://127.0.0.1:{proxy.port}",
                modbus_port=sim.port,
                buffer_path=work / "buffer.db",
                interval_s=INTERVAL_S,
                timeout_s=0.3,
            )
        )
        agent_log = work / "agent.log"
        with agent_log.open("ab") as log:
            agent = subprocess.Popen(
                [*EMS, "edge", "run", "--config", str(config)],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO), "EMS_TOKEN": token},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        browser = launch_chromium(playwright)
        try:
            yield Site(hub, sim, proxy, browser, agent_log)
        finally:
            browser.close()
            agent.terminate()
            agent.wait(timeout=30)
            sim.stop()


def test_a_stopped_modbus_server_shows_as_failing_within_three_intervals(site: Site) -> None:
    fleet, fleet_watch = site.open("/")
    page, page_watch = site.open(f"/devices/{DEVICE_ID}")
    fleet.wait_for_selector(f'{CARD}[data-condition="ok"]', timeout=60_000)
    page.wait_for_selector('.values-card[data-section="grid"][data-stale="false"]')
    assert page.locator("#status").inner_text() == "online"

    site.sim.stop()
    stopped = time.monotonic()
    fleet.wait_for_selector(f'{CARD}[data-condition="failing"]', timeout=30_000)
    took = time.monotonic() - stopped
    assert took <= 3 * INTERVAL_S, f"the fleet card turned after {took:.1f} s"
    # The card names the devices that are not read, and its numbers are greyed.
    problem = fleet.locator(f"{CARD} .card-problem").inner_text()
    for name in ("inverter", "meter", "charger", "bms"):
        assert name in problem, problem
    assert fleet.locator(f"{CARD} .pill").inner_text() == "failing"
    ink = fleet.evaluate("getComputedStyle(document.querySelector('.device-name')).color")
    number = fleet.eval_on_selector(f"{CARD} .metric dd", "el => getComputedStyle(el).color")
    assert number != ink, "the frozen numbers are not greyed"

    # The device page: every section greyed with its age, the failing devices named.
    page.wait_for_selector('.values-card[data-section="grid"][data-stale="true"]', timeout=10_000)
    live_cards = '.values-card[data-stale="false"]:not(.derived)'
    # Extra has no device of its own: it is greyed by its age.
    wait_js(page, f"document.querySelectorAll({live_cards!r}).length === 0")
    wait_js(
        page,
        "document.querySelector('.values-card[data-section=\"battery\"] .age')"
        "?.textContent.startsWith('as of')",
    )
    assert page.locator("#status").inner_text() == "failing"
    assert page.locator("#flow").get_attribute("data-stale") == "true"
    # The header's badge is not green while the values are not live.
    assert page.locator("#connection").get_attribute("data-state") == "idle"
    assert "device failing" in page.locator("#connection").inner_text()
    for where, selector in ((fleet, f"{CARD} .pill"), (page, "#status")):
        assert contrast(where, selector) >= 4.5, selector
    # The ⚠ marks read in both schemes: the card's problem line and the failing device.
    marks = (("/", f"{CARD} .card-problem"), (page.url, '#health-list li[data-state="failing"]'))
    schemes: tuple[ColorScheme, ...] = ("light", "dark")
    for scheme in schemes:
        for url, selector in marks:
            themed, _ = site.open(url.removeprefix(site.hub.http), color_scheme=scheme)
            themed.wait_for_selector(selector, timeout=10_000)
            ratio = contrast(themed, selector, "before")
            assert ratio >= 4.5, (scheme, selector, round(ratio, 2))
            themed.close()
    assert page.locator('#health-list li[data-device="inverter"]').get_attribute("data-state") == (
        "failing"
    )
    banner = page.locator("#health-banner").inner_text()
    assert "inverter" in banner
    assert "not read since" in banner

    site.sim.start()  # the devices come back: live again
    fleet.wait_for_selector(f'{CARD}[data-condition="ok"]', timeout=30_000)
    page.wait_for_selector('.values-card[data-section="grid"][data-stale="false"]')
    assert page.locator("#status").inner_text() == "online"
    # What each device says it is, read again once the bus came back (docs/protocol.md,
    # "Device health": identity): the simulated SunSpec inverter and SDM630.
    for name, identity in (
        ("inverter", "EMS Switchboard SimInverter, SN SIM-0001, firmware 1.0"),
        ("meter", "Eastron, SN 20123456"),
    ):
        item = f'#health-list li[data-device="{name}"]'
        wait_js(page, f"document.querySelector({item!r})?.textContent.endsWith({identity!r})")
    assert fleet_watch.problems() == []
    assert page_watch.problems() == []
    fleet.close()
    page.close()


def test_an_agents_backlog_fills_an_open_chart_without_a_reload(site: Site) -> None:
    page, watch = site.open(f"/devices/{DEVICE_ID}")
    wait_js(
        page,
        "window.emsDashboard.points().filter(p => p.source === 'live').length >= 2",
        timeout=30_000,
    )
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    site.proxy.cut()  # the agent loses the hub and keeps polling into its buffer
    cut_at = datetime.now(UTC)
    page.wait_for_selector('#status[data-online="offline"]', timeout=20_000)
    time.sleep(6 * INTERVAL_S)
    restored_at = datetime.now(UTC)
    site.proxy.restore()

    # The readings taken while cut off, as the hub stored them (sent as a batch).
    def outage_readings() -> list[str]:
        rows = site.hub.readings(
            DEVICE_ID, start=cut_at + timedelta(seconds=1), end=restored_at - timedelta(seconds=1)
        )
        return [str(row["ts"]) for row in rows]

    wait_until(lambda: len(outage_readings()) >= 4, 60, "the backlog to be stored")
    stamps = [
        int(datetime.fromisoformat(ts).timestamp() * 1000) for ts in outage_readings()
    ]  # ms, as the page parses them
    wait_js(
        page,
        f"(() => {{ const have = new Set(window.emsDashboard.points().map(p => p.ts));"
        f" return {stamps}.every(ts => have.has(ts)); }})()",
        timeout=20_000,
    )
    shown = {p["ts"]: p["source"] for p in page.evaluate("window.emsDashboard.points()")}
    assert {shown[ts] for ts in stamps} == {"backlog"}  # stored history, not live frames
    assert page.evaluate("window.sameDocument") is True
    assert watch.problems() == []
    page.close()


def test_an_unknown_device_page_is_404(site: Site) -> None:
    page, _ = site.open("/devices/nobody_here")
    response = page.goto(f"{site.hub.http}/devices/nobody_here")
    assert response is not None
    assert response.status == 404
    assert "nobody_here" in page.locator("body").inner_text()
    page.close()


METRICS = ("solar", "soc", "grid", "house")


def test_text_meets_wcag_aa_contrast(site: Site) -> None:
    fleet, _ = site.open("/")
    fleet.wait_for_selector(f'{CARD}[data-condition="ok"]', timeout=30_000)
    page, _ = site.open(f"/devices/{DEVICE_ID}")
    page.wait_for_selector('.values-card[data-section="grid"] .value-row dt')
    page.wait_for_selector('#status[data-condition="ok"]')
    checks = [
        (fleet, f"{CARD} .pill"),
        *((fleet, f'{CARD} .metric[data-metric="{m}"] dt') for m in METRICS),
        (fleet, f"{CARD} .card-foot"),
        (page, "#status"),
        (page, ".values-card h3"),
        (page, ".value-row dt"),
        (page, ".value-row dd"),
        (page, ".chart-foot"),
        (page, ".legend li"),
        (page, "#values-ts"),
    ]
    ratios = {selector: round(contrast(where, selector), 2) for where, selector in checks}
    assert all(ratio >= 4.5 for ratio in ratios.values()), ratios
    fleet.close()
    page.close()


def test_values_read_as_people_write_them(site: Site) -> None:
    page, watch = site.open(f"/devices/{DEVICE_ID}")
    page.wait_for_selector(
        '[data-field="extra.charger_charging_status"]', state="attached", timeout=30_000
    )
    page.wait_for_selector('#status[data-condition="ok"]')
    # Enumerations by name, with the number kept for whoever wants it.
    status = page.locator('[data-field="extra.charger_charging_status"] dd')
    assert status.text_content() in {"not charging", "float", "boost", "equalization"}
    assert (
        page.locator('[data-field="extra.bms_full_capacity_ah"] dd').text_content().endswith(" Ah")
    )
    # One rounding per unit: watts without decimals, kilowatts with two; never "-0".
    for text in page.locator("#values dd").all_text_contents():
        assert not re.match(r"^-0(\.0+)?( |%|$)", text), text
        if text.endswith(" W"):
            assert re.fullmatch(r"-?[\d,]+( / -?[\d,]+)* W", text), text  # phases too
        if text.endswith(" kW"):
            assert re.fullmatch(r"-?[\d,]+\.\d\d kW", text), text
    # The Extra card's ~50 values are grouped and folded: a few lines until opened.
    extra = page.locator('.values-card[data-section="extra"]')
    assert extra.locator("details.value-group").count() >= 3
    visible = extra.locator(".value-row:visible").count()
    assert visible == 0, visible
    group = extra.locator('details.value-group[data-group^="bms_cell_voltage"]')
    assert "BMS cell voltage 1–16 (16)" in (group.locator("summary").text_content() or "")
    group.locator("summary").click()
    page.wait_for_timeout(1500)  # a reading or two re-draw the card: it stays open
    assert extra.locator('details.value-group[data-group^="bms_cell_voltage"][open]').count() == 1
    # The flow adds up: what the inverter loses (or a DC load takes) is said.
    note = page.locator('[data-note="losses"]').text_content() or ""
    assert note == "" or re.fullmatch(r"losses/other -?[\d.,]+ k?W", note), note
    # The chart's caption says what the chart is, not how many points it holds.
    assert "points" not in page.locator(".chart-foot").inner_text()
    # The display rules themselves, on values at their edges.
    results = page.evaluate(
        """async () => {
          const d = await import("/static/js/display.js");
          return [
            d.formatQuantity(-0.3, "W"),
            d.formatQuantity(816.45, "W"),
            d.formatQuantity(3120.5, "W"),
            d.displayValue("grid", "power_factor", 0, {phasePowers: [300, -300, 0]}).text,
            d.displayValue("grid", "power_factor", 0.98, {phasePowers: [300, 250, 300]}).text,
            d.describeField("bms_full_capacity_ah").unit,
            d.displayValue("extra", "charger_charging_status", 2).text,
          ];
        }"""
    )
    assert results == ["0 W", "816 W", "3.12 kW", "n/a (phases cancel)", "0.98", "Ah", "boost"]
    assert watch.problems() == []
    page.close()
