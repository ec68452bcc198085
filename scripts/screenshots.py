"""Remake the README's screenshots from ``ems demo``, as a newcomer sees it.

    .venv/bin/python scripts/screenshots.py            # 3 to 10 minutes
    .venv/bin/python scripts/screenshots.py --settle 60 --out /tmp/shots

Starts ``ems demo`` (hub, simulated site and edge agent) in a throw-away
folder on a free port, waits until the site has run for ``--settle`` seconds
(so the chart has a history) and the grid and battery show non-zero flows (or,
five minutes later, one of them: the simulated site can run for minutes with
the grid at 0 W), then opens the fleet page ``/`` and the device page
``/devices/<id>`` in Debian's chromium (driven by Playwright, as the browser
tests do) and writes ``fleet.png`` and ``device.png`` (1280 px wide, the
whole page) to ``docs/screenshots/``. The demo is stopped with SIGINT, like
Ctrl-C, and the folder removed.

The energy bars need a day that has passed, which a demo started a few
minutes ago has not. So before the demo starts, its database is given
yesterday (in the agent's time zone, this machine's): the demo's own plant
(the sunny scenario and seed of ``ems sim``) over a whole simulated day, one
reading every 5 s with the energy the agent's integrator gives it
(simulation/history.py), stored through the hub's storage as its writer
stores readings. ``energy.png`` and ``energy-dark.png`` are the
device page's energy panel on that day, in the browser's light and dark
colour scheme.

It refuses to write a picture of a page that shows the sign-in form or an
error banner, whose chart is empty, or whose energy bars show no PV: the
README must show a live site.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, Page, sync_playwright

from edge.config import system_timezone
from edge.demo import DATABASE_FILE, DEVICE_ID
from hub.storage.base import StoredReading
from hub.storage.sqlite import SqliteStorage
from simulation.history import simulated_day
from telemetry import Reading

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 900}
PATIENCE_S = 300.0  # how long past --settle to wait for grid and battery to both move

# Banners a page shows only when something is wrong (offline, unhealthy, an error).
BANNERS = ("#notice", "#offline-banner", "#health-banner")


def say(text: str) -> None:
    """Progress on stdout (the ruleset keeps ``print`` out of the packages)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def flows(device: dict[str, Any]) -> int:
    """How many of grid and battery move power (arrows in the flow picture), 0 if offline."""
    if not device.get("online"):
        return 0
    reading = device.get("last_reading") or {}
    grid = (reading.get("grid") or {}).get("power_w") or 0.0
    battery = (reading.get("battery") or {}).get("power_w") or 0.0
    return int(abs(grid) >= 50) + int(abs(battery) >= 50)


def wait_for_site(base: str, demo: subprocess.Popen[bytes], settle_s: float) -> str:
    """The id of the demo's device, once it has run ``settle_s`` and looks lively.

    Lively is grid and battery both moving power; the simulated site can cover
    its house from the battery alone for minutes (grid at 0 W), so after
    ``PATIENCE_S`` more one moving flow will do.
    """
    started = time.monotonic()
    told = -10.0
    while True:
        if demo.poll() is not None:
            raise SystemExit(f"ems demo exited with {demo.returncode}")
        try:
            devices = get_json(f"{base}/api/devices")
        except (OSError, urllib.error.URLError, ValueError):
            devices = []
        waited = time.monotonic() - started
        best = max(devices, key=flows, default=None)
        moving = 0 if best is None else flows(best)
        wanted = 2 if waited < settle_s + PATIENCE_S else 1
        if best is not None and waited >= settle_s and moving >= wanted:
            return str(best["device_id"])
        if waited > settle_s + 2 * PATIENCE_S:
            raise SystemExit("the demo's site never showed a lively device")
        if waited - told >= 10:
            say(f"  {waited:4.0f} s: {len(devices)} device(s), {moving} of grid/battery moving")
            told = waited
        time.sleep(1)


async def store_history(database: Path, readings: list[dict[str, Any]]) -> None:
    """Into the demo's database, through the hub's storage (rollups and all), before it starts."""
    storage = SqliteStorage(database)
    await storage.open()
    try:
        now = datetime.now(UTC)
        for first in range(0, len(readings), 1000):
            rows = [
                StoredReading(DEVICE_ID, Reading.model_validate(raw), now)
                for raw in readings[first : first + 1000]
            ]
            await storage.write_readings(rows)
    finally:
        await storage.close()


def yesterday() -> datetime:
    """Yesterday's local midnight in the zone the demo's agent names (this machine's)."""
    zone = ZoneInfo(system_timezone())
    today = datetime.now(zone).date()
    return datetime.combine(today - timedelta(days=1), datetime.min.time(), tzinfo=zone)


def wait_js(page: Page, expression: str, timeout_s: float = 60) -> None:
    """Poll through the DevTools protocol: the hub's CSP forbids ``wait_for_function``'s eval."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s} s waiting for {expression}")
        page.wait_for_timeout(200)


def check_page(page: Page, what: str) -> None:
    if page.locator("form").filter(has=page.locator("input[type=password]")).count():
        raise SystemExit(f"the {what} page shows the sign-in form")
    for selector in BANNERS:
        banner = page.locator(selector)
        if banner.count() and banner.first.is_visible():
            raise SystemExit(f"the {what} page shows a banner: {banner.first.inner_text()!r}")


def shoot_energy(
    browser: Browser, base: str, device_id: str, day: str, path: Path, scheme: str
) -> None:
    """The device page's energy panel on the local date ``day``, in a colour scheme."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{base}/devices/{device_id}")
    ready = "(() => { const s = document.getElementById('energy');"
    wait_js(page, f"{ready} return s.dataset.state === 'ready' && !!s.dataset.anchor; }})()")
    page.click("#energy-prev")  # the panel opens on today; yesterday is the whole day
    wait_js(
        page, f"{ready} return s.dataset.state === 'ready' && s.dataset.anchor === {day!r}; }})()"
    )
    check_page(page, "device")
    pv = page.evaluate(
        "[...document.querySelectorAll('#energy-bars .energy-bar[data-quantity=\"pv_wh\"]')]"
        ".reduce((sum, bar) => sum + Number(bar.dataset.wh || 0), 0)"
    )
    if pv <= 0:
        raise SystemExit(f"the energy bars of {day} show no PV")
    page.locator("#energy").screenshot(path=str(path))
    context.close()


def shoot(base: str, device_id: str, out: Path, day: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.goto(f"{base}/")
            wait_js(page, "document.querySelectorAll('#fleet li').length > 0")
            wait_js(page, "document.getElementById('connection').dataset.state === 'live'")
            page.wait_for_timeout(2000)  # a few live updates: ages and values settle
            check_page(page, "fleet")
            page.screenshot(path=str(out / "fleet.png"), full_page=True)

            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.goto(f"{base}/devices/{device_id}")
            wait_js(page, "(window.emsDashboard?.points().length ?? 0) > 20")
            wait_js(page, "document.getElementById('connection').dataset.state === 'live'")
            page.wait_for_timeout(3000)  # the flow picture and the values catch up
            check_page(page, "device")
            page.screenshot(path=str(out / "device.png"), full_page=True)

            shoot_energy(browser, base, device_id, day, out / "energy.png", "light")
            shoot_energy(browser, base, device_id, day, out / "energy-dark.png", "dark")
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--settle", type=float, default=150, help="seconds of history first")
    parser.add_argument("--port", type=int, default=0, help="the demo's port (default: a free one)")
    args = parser.parse_args()

    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    ems = Path(sys.executable).with_name("ems")
    day = yesterday()
    with (
        tempfile.TemporaryDirectory(prefix="ems-screenshots-") as folder,
        tempfile.TemporaryFile() as log,
    ):
        data = Path(folder)
        say(f"storing the simulated site's {day.date()} in {data / DATABASE_FILE}")
        asyncio.run(store_history(data / DATABASE_FILE, simulated_day(day)))
        command = [str(ems), "demo", "--data-dir", str(data), "--port", str(port)]
        say(f"starting {' '.join(command)}")
        demo = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            device_id = wait_for_site(base, demo, args.settle)
            say(f"photographing {base}/ and {base}/devices/{device_id}")
            shoot(base, device_id, args.out, day.date().isoformat())
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            if demo.poll() is None:
                demo.send_signal(signal.SIGINT)  # as Ctrl-C: the demo stops its children
                try:
                    demo.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    demo.kill()
                    demo.wait()
    names = ", ".join(f"{name}.png" for name in ("fleet", "device", "energy", "energy-dark"))
    say(f"wrote {names} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
