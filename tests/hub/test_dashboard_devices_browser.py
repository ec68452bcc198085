"""The device page of a site with several devices per role, in a real browser.

A real hub process (on PostgreSQL), a device publishing readings whose sections are
the site's totals and whose ``devices`` holds each device's own values (made
by the edge's own composer from a plausible site split in two inverters, two
battery stacks, a main meter and a heat pump's sub-meter), and Debian's
chromium driven by Playwright: the page shows the totals as for any site and a
table per role with each device and the site's total.
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from edge.compose import Member, compose_site
from telemetry.roles import Role
from tests.hub.dashboard_support import (
    ConsoleWatch,
    HubProcess,
    Publisher,
    launch_chromium,
    open_signed_in,
    screenshot,
    site_reading,
    wait_js,
)
from tests.support.polling import wait_until
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

VIEWER_TOKEN = "let-me-look"
MULTI = "multi_site"
PLAIN = "plain_site"


def multi_reading(ts: datetime, seq: int) -> dict[str, Any]:
    """A site reading split over its devices, then composed as the edge agent does."""
    site = site_reading(ts, seq=seq)
    inverter, grid, battery = site["inverter"], site["grid"], site["battery"]

    def part(values: dict[str, Any], share: float, keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: round(v * share, 1) if k in keys else v for k, v in values.items()}

    additive = ("ac_power_w", "dc_power_w", "ac_current_a", "energy_total_wh", "power_w")
    heat_pump = round(400.0 + 100.0 * math.sin(ts.timestamp() / 60), 1)
    members = [
        Member("inverter_east", Role.INVERTER, True, {"inverter": part(inverter, 0.6, additive)}),
        Member("inverter_west", Role.INVERTER, True, {"inverter": part(inverter, 0.4, additive)}),
        Member("meter_main", Role.GRID, True, {"grid": grid}),
        Member("heat_pump", Role.GRID, False, {"grid": {"power_w": heat_pump, "voltage_v": 230.1}}),
        Member(
            "stack_a",
            Role.BATTERY,
            True,
            {"battery": part(battery, 0.5, additive) | {"soc_pct": battery["soc_pct"] + 2}},
        ),
        Member(
            "stack_b",
            Role.BATTERY,
            True,
            {"battery": part(battery, 0.5, additive) | {"soc_pct": battery["soc_pct"] - 2}},
        ),
    ]
    composed = compose_site(members)
    assert composed.rejected == ()
    reading: dict[str, Any] = json.loads(composed.body())
    return {"seq": seq, "ts": site["ts"], "solar": site["solar"], **reading}


@pytest.fixture(scope="module")
def hub(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    work = tmp_path_factory.mktemp("dashboard-devices")
    hub = HubProcess(
        port=free_port(),
        database=postgres_url,
        data_dir=work / "ems-data",
        viewer_token=VIEWER_TOKEN,
        log_path=work / "hub.log",
    )
    tokens = {device: hub.add_token(device) for device in (MULTI, PLAIN)}
    hub.start()
    publishers = [
        Publisher(f"{hub.ws_url}/ws/device/{MULTI}", tokens[MULTI], make=multi_reading),
        Publisher(f"{hub.ws_url}/ws/device/{PLAIN}", tokens[PLAIN]),
    ]
    for publisher in publishers:
        publisher.start()
    try:
        for publisher in publishers:
            wait_until(publisher.connected.is_set, 10, "the devices to connect")
        hub.publishers = publishers  # type: ignore[attr-defined]
        yield hub
    finally:
        for publisher in publishers:
            publisher.close()
        hub.stop()


def open_page(hub: HubProcess, path: str) -> tuple[Page, ConsoleWatch, Any]:
    playwright = sync_playwright().start()
    browser = launch_chromium(playwright)
    page, watch = open_signed_in(browser, f"{hub.http_url}{path}", VIEWER_TOKEN)
    return page, watch, (playwright, browser)


def close_page(handles: Any) -> None:
    playwright, browser = handles
    browser.close()
    playwright.stop()


def test_each_device_beside_the_site_totals(hub: HubProcess) -> None:
    page, watch, handles = open_page(hub, f"/devices/{MULTI}")
    publisher: Publisher = hub.publishers[0]  # type: ignore[attr-defined]
    try:
        page.wait_for_selector('.devices-card[data-role="battery"]', timeout=15_000)
        publisher.freeze()
        try:
            sent = publisher.last_sent()
            wait_js(
                page,
                f"document.getElementById('values-ts').dataset.ts === {sent['ts']!r}",
                timeout=10_000,
            )
            assert page.locator("#devices-section").is_visible()
            roles = page.locator(".devices-card").evaluate_all("cs => cs.map(c => c.dataset.role)")
            assert roles == ["inverter", "grid", "battery"]
            for name, device in sent["devices"].items():
                row = page.locator(f'.devices-card tr[data-device="{name}"]')
                assert row.count() == 1, name
                assert row.get_attribute("data-total") == str(device.get("total", True)).lower()
                section = device["role"]
                for field, value in device[section].items():
                    cell = row.locator(f'td[data-field="{section}.{field}"]')
                    if cell.count():
                        assert json.loads(cell.get_attribute("data-value") or "") == value
            # Each role's last row is the site's total: the reading's section.
            east = sent["devices"]["inverter_east"]["inverter"]["ac_power_w"]
            west = sent["devices"]["inverter_west"]["inverter"]["ac_power_w"]
            inverters = page.locator('.devices-card[data-role="inverter"] tr.site-total')
            total = inverters.locator('td[data-field="inverter.ac_power_w"]')
            assert (
                json.loads(total.get_attribute("data-value") or "")
                == sent["inverter"]["ac_power_w"]
            )
            assert math.isclose(sent["inverter"]["ac_power_w"], east + west, abs_tol=1e-6)
            # The sub-meter is labelled and not added: the grid total is the main meter's.
            heat_pump = page.locator('tr[data-device="heat_pump"]')
            assert "sub-meter" in heat_pump.inner_text()
            grid_total = page.locator(
                '.devices-card[data-role="grid"] tr.site-total td[data-field="grid.power_w"]'
            )
            main = sent["devices"]["meter_main"]["grid"]["power_w"]
            assert json.loads(grid_total.get_attribute("data-value") or "") == main
            # Two stacks of no known capacity: the site's SOC is their mean.
            soc = [sent["devices"][s]["battery"]["soc_pct"] for s in ("stack_a", "stack_b")]
            assert math.isclose(sent["battery"]["soc_pct"], sum(soc) / 2)
            # The totals still drive the values and the flow, as for any site.
            shown = page.locator('[data-field="inverter.ac_power_w"] dd').first
            assert shown.inner_text() != "—"
            screenshot(page, "device-several-per-role")
        finally:
            publisher.thaw()
        assert watch.problems() == [], watch.errors
    finally:
        close_page(handles)


def test_a_site_of_one_device_per_role_shows_no_device_tables(hub: HubProcess) -> None:
    page, watch, handles = open_page(hub, f"/devices/{PLAIN}")
    try:
        page.wait_for_selector('[data-field="grid.power_w"]', timeout=15_000)
        assert page.locator("#devices-section").is_hidden()
        assert page.locator(".devices-card").count() == 0
        assert watch.problems() == [], watch.errors
    finally:
        close_page(handles)


def test_history_from_the_api_holds_each_device(hub: HubProcess) -> None:
    request = urllib.request.Request(
        f"{hub.http_url}/api/devices/{MULTI}/readings?order=desc&limit=5",
        headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        readings = json.loads(answer.read())["readings"]
    assert readings
    for reading in readings:
        assert set(reading["devices"]) == {
            "inverter_east",
            "inverter_west",
            "meter_main",
            "heat_pump",
            "stack_a",
            "stack_b",
        }
        assert reading["devices"]["heat_pump"]["total"] is False
