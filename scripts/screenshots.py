"""Remake the README's screenshots from ``ems demo``, as a newcomer sees it.

    .venv/bin/python scripts/screenshots.py            # 3 to 10 minutes
    .venv/bin/python scripts/screenshots.py --settle 60 --out /tmp/shots

Starts ``ems demo --temp`` (hub, simulated site and edge agent, in a
throw-away folder) on a free port, waits until the site has run for
``--settle`` seconds (so the chart has a history) and the grid and battery
show non-zero flows (or, five minutes later, one of them: the simulated site
can run for minutes with the grid at 0 W), then opens the fleet page ``/`` and the device page
``/devices/<id>`` in Debian's chromium (driven by Playwright, as the browser
tests do) and writes ``fleet.png`` and ``device.png`` (1280 px wide, the
whole page) to ``docs/screenshots/``. The demo is stopped with SIGINT, like
Ctrl-C, so it removes its folder itself.

It refuses to write a picture of a page that shows the sign-in form or an
error banner, or whose chart is empty: the README must show a live site.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

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


def shoot(base: str, device_id: str, out: Path) -> None:
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
    command = [str(ems), "demo", "--temp", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        say(f"starting {' '.join(command)}")
        demo = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            device_id = wait_for_site(base, demo, args.settle)
            say(f"photographing {base}/ and {base}/devices/{device_id}")
            shoot(base, device_id, args.out)
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            if demo.poll() is None:
                demo.send_signal(signal.SIGINT)  # as Ctrl-C: the demo cleans up after itself
                try:
                    demo.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    demo.kill()
                    demo.wait()
    say(f"wrote {args.out / 'fleet.png'} and {args.out / 'device.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
