"""Real parts for the dashboard's browser tests: a hub process, a publishing device, a browser.

Nothing here is a stand-in: the hub is ``ems hub serve`` in its own process
(so a restart is a real SIGTERM and a new process on the same port and
database), the device speaks the protocol over a real WebSocket, and the pages
run in Debian's chromium driven by Playwright. The page scaffolding every
browser test shares is here too: launching chromium, opening a page that
records its console errors, signing in through the page's own form, waiting
on the page's state, screenshots, and the WCAG contrast of what it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from playwright.sync_api import Browser, Page, Playwright, ViewportSize
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from telemetry import format_ts

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
SCREENSHOTS = ROOT / "docs" / "screenshots"
# The README's pictures of ``ems demo`` (scripts/screenshots.py), never a test's made-up site.
README_SHOTS = frozenset({"fleet", "device", "energy", "energy-dark"})
ColorScheme = Literal["light", "dark"]


def _ems(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ems.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class HubProcess:
    """``ems hub serve`` on a fixed port, so it can be stopped and started again."""

    port: int
    database: str
    data_dir: Path
    viewer_token: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        # The viewer token from the environment: on the command line ps would show it.
        return {
            **os.environ,
            "EMS_DATA_DIR": str(self.data_dir),
            "EMS_VIEWER_TOKEN": self.viewer_token,
        }

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def add_token(self, device_id: str) -> str:
        done = _ems("hub", "token", "--database", self.database, "add", device_id, env=self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "ems.cli",
            "hub",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database",
            self.database,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the hub did not answer /healthz within 30 s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, as a service manager would; the hub must exit by itself."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the hub ignored SIGTERM for 15 s:\n{self.log()}") from None
        finally:
            self.process = None
        assert code == 0, f"the hub exited with {code} on SIGTERM:\n{self.log()}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def site_reading(ts: datetime, *, seq: int | None = None) -> dict[str, Any]:
    """A plausible reading of a sunny site that exports, a smooth function of ``ts``.

    History and live readings come from the same function, so a chart across
    the seam is one continuous line.
    """
    t = ts.timestamp()
    index = int(t) - 1_790_000_000  # grows with time: energy counters never go back
    # Chosen so the site always exports and the battery always charges:
    # inverter >= 3140 * 0.96 - 1350 > 1660 W, house <= 1510 W.
    pv = round(3600.0 + 400.0 * math.sin(t / 300) + 60.0 * math.sin(t / 7), 1)
    battery = round(-1100.0 + 250.0 * math.sin(t / 450), 1)
    house = round(1200.0 + 250.0 * math.cos(t / 200) + 60.0 * math.sin(t / 5), 1)
    inverter = round(pv * 0.96 + battery, 1)  # what reaches the AC side
    grid = round(house - inverter, 1)  # negative: the site exports
    soc = round(60.0 + 20.0 * math.sin(t / 900), 1)
    reading: dict[str, Any] = {
        "ts": format_ts(ts),
        "inverter": {
            "ac_power_w": inverter,
            "ac_voltage_v": 231.2,
            "ac_current_a": round(inverter / 231.2, 2),
            "ac_frequency_hz": 50.01,
            "dc_power_w": round(pv * 0.98, 1),
            "energy_total_wh": 8_123_400 + index,
            "temperature_c": 41.5,
            "state": "mppt",
        },
        "grid": {
            "power_w": grid,
            "voltage_v": 230.8,
            "current_a": round(grid / 230.8, 2),
            "frequency_hz": 49.98,
            "power_factor": 0.98,
            "import_energy_wh": 1_523_000,
            "export_energy_wh": 2_210_000 + index,
            "phase_voltage_v": [230.8, 231.1, 229.9],
            "phase_power_w": [round(grid / 3, 1)] * 3,
        },
        "solar": {
            "pv_power_w": pv,
            "pv_voltage_v": 380.2,
            "pv_current_a": round(pv / 380.2, 2),
            "energy_today_wh": 10_450 + (index % 86_400) // 10,
            "energy_total_wh": 9_100_000 + index,
        },
        "battery": {
            "soc_pct": soc,
            "soh_pct": 98.0,
            "power_w": battery,
            "voltage_v": 51.9,
            "current_a": round(battery / 51.9, 2),
            "temperature_c": 24.0,
            "cell_voltage_min_v": 3.241,
            "cell_voltage_max_v": 3.262,
            "state": "charging",
        },
        "extra": {"bms_cycle_count": 312},
    }
    if seq is not None:
        reading["seq"] = seq
    return reading


def send_history(url: str, token: str, readings: list[dict[str, Any]]) -> None:
    """Send readings as one batch (stored, not live) and wait until all are acked.

    Runs on a thread of its own: Playwright's sync API holds this thread's loop.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_send_history(url, token, readings))
        except BaseException as err:
            failure.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


async def _send_history(url: str, token: str, readings: list[dict[str, Any]]) -> None:
    wanted = {int(r["seq"]) for r in readings}
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "batch", "items": readings}))
        async with asyncio.timeout(30):
            while wanted:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "ack":
                    for first, last in frame["ranges"]:
                        wanted -= set(range(first, last + 1))


@dataclass
class Publisher:
    """A device streaming live readings from its own thread, reconnecting by itself.

    ``pause()`` disconnects and stays away (the device goes offline),
    ``resume()`` comes back; ``freeze()`` keeps the socket but stops sending,
    so a test can compare a page with the last reading sent.
    """

    url: str
    token: str
    interval_s: float = 0.5
    first_seq: int = 1_000_000
    # What it sends: a reading for (ts, seq).
    make: Callable[..., dict[str, Any]] = field(default=lambda ts, seq: site_reading(ts, seq=seq))
    sent: list[dict[str, Any]] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    _online: threading.Event = field(default_factory=threading.Event)
    _sending: threading.Event = field(default_factory=threading.Event)
    _idle: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._online.set()
        self._sending.set()
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def pause(self) -> None:
        self._online.clear()

    def resume(self) -> None:
        self._online.set()

    def freeze(self) -> None:
        """Stop sending; returns once no reading is on its way any more."""
        self._idle.clear()
        self._sending.clear()
        if not self._idle.wait(timeout=10):
            raise AssertionError("the publisher did not pause its sending")

    def thaw(self) -> None:
        self._sending.set()

    def last_sent(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.sent[-1])

    def count(self) -> int:
        with self._lock:
            return len(self.sent)

    async def _run(self) -> None:
        seq = self.first_seq
        while not self._stop.is_set():
            if not self._online.is_set():
                await asyncio.sleep(0.05)
                continue
            try:
                headers = {"Authorization": f"Bearer {self.token}"}
                async with connect(self.url, additional_headers=headers, open_timeout=5) as ws:
                    self.connected.set()
                    drain = asyncio.create_task(self._drain(ws))
                    try:
                        while self._online.is_set() and not self._stop.is_set():
                            if self._sending.is_set():
                                reading = self.make(datetime.now(UTC), seq)
                                await ws.send(json.dumps(reading))
                                seq += 1
                                with self._lock:
                                    self.sent.append(reading)
                            else:
                                self._idle.set()
                            await asyncio.sleep(self.interval_s)
                    finally:
                        drain.cancel()
            except (OSError, TimeoutError, WebSocketException):
                pass  # the hub is away (restarting): try again shortly
            finally:
                self.connected.clear()
            await asyncio.sleep(0.2)

    @staticmethod
    async def _drain(ws: ClientConnection) -> None:
        """Read the acks, so they never pile up in the socket."""
        with contextlib.suppress(WebSocketException):
            async for _ in ws:
                pass


def history_readings(count: int, step: timedelta) -> list[dict[str, Any]]:
    """``count`` readings ending one ``step`` before now, seqs 1..count."""
    now = datetime.now(UTC)
    return [site_reading(now - step * (count - index), seq=index) for index in range(1, count + 1)]


# Chromium reports a refused connection as a console error; while the hub is
# deliberately down (the restart test) those, and only those, are expected.
NETWORK_FAILURE = re.compile(
    r"^(WebSocket connection to 'ws://127\.0\.0\.1:\d+/ws/dashboard/[^']+' failed"
    r"|Failed to load resource: net::ERR_[A-Z_]+$)"
)


@dataclass
class ConsoleWatch:
    """Every console error and uncaught exception of a page."""

    errors: list[str] = field(default_factory=list)

    def problems(self, *, allow: re.Pattern[str] | None = None) -> list[str]:
        return [text for text in self.errors if allow is None or not allow.search(text)]


@contextlib.contextmanager
def hub_stopped(hub: HubProcess) -> Iterator[None]:
    """The hub is down inside the block and back (same port, same database) after it."""
    hub.stop()
    try:
        yield
    finally:
        hub.start()


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def watch_console(page: Page) -> ConsoleWatch:
    """Record the page's console errors and uncaught exceptions from now on."""
    watch = ConsoleWatch()
    page.on(
        "console",
        lambda message: watch.errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error}"))
    return watch


def sign_in(page: Page, token: str) -> None:
    """Give the viewer token to the page's own sign-in form; returns once the page reloaded."""
    page.locator("#sign-in").wait_for(timeout=15_000)
    page.fill("#viewer-token", token)
    with page.expect_navigation():
        page.click("#sign-in button[type=submit]")


def open_signed_in(
    browser: Browser,
    url: str,
    token: str,
    *,
    viewport: ViewportSize = DESKTOP,
    color_scheme: ColorScheme | None = None,
) -> tuple[Page, ConsoleWatch]:
    """A page in a fresh browser context, signed in; its watch starts after the sign-in."""
    context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
    page = context.new_page()
    watch = watch_console(page)
    page.goto(url)
    sign_in(page, token)
    watch.errors.clear()  # the signed-out phase
    return page, watch


def wait_js(page: Page, expression: str, *, timeout: float = 30_000) -> None:
    """``page.wait_for_function`` without its in-page ``eval``, which the hub's CSP forbids
    (as it should); ``page.evaluate`` goes through the DevTools protocol instead."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout / 1000} s waiting for {expression}")
        page.wait_for_timeout(100)


def screenshot(page: Page, name: str) -> None:
    """The whole page to ``test-artifacts/dashboard/``; with ``EMS_UPDATE_SCREENSHOTS=1``
    also to ``docs/screenshots/``, except the README's pictures of ``ems demo``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("EMS_UPDATE_SCREENSHOTS") == "1" and name not in README_SHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / path.name)


# --- Contrast (WCAG 2.x, "contrast ratio" and "relative luminance") ----------------

RGB = tuple[float, float, float]
_CSS_RGB = re.compile(
    r"^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)$"
)


def css_rgb(text: str) -> tuple[RGB, float]:
    """A computed colour, ``rgb(r, g, b)`` or ``rgba(r, g, b, a)``: 0-255 channels, alpha."""
    match = _CSS_RGB.match(text.strip())
    if match is None:
        raise ValueError(f"not a computed rgb() colour: {text!r}")
    r, g, b, alpha = match.groups()
    if alpha is None:
        opacity = 1.0
    elif alpha.endswith("%"):
        opacity = float(alpha[:-1]) / 100
    else:
        opacity = float(alpha)
    return (float(r), float(g), float(b)), opacity


def relative_luminance(rgb: RGB) -> float:
    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: RGB, b: RGB) -> float:
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


# An element's computed colour (``color`` for text, ``fill`` or ``stroke`` for
# SVG shapes and text, ``background-color`` for a box) and the background it is drawn on: the
# nearest opaque background colour, the element's own for its text (a pill).
_COLOURS_JS = r"""(el, property) => {
  const before = property === "before";
  const style = getComputedStyle(el, before ? "::before" : null);
  const own = property === "background" ? style.backgroundColor
    : before ? style.color : style[property];
  let node = property === "color" || before ? el : el.parentElement;
  let background = null;
  while (node) {
    const colour = getComputedStyle(node).backgroundColor;
    const alpha = colour.match(/^rgba\(.*,\s*([\d.]+)\)$/);
    if (!alpha || Number(alpha[1]) === 1) { background = colour; break; }
    node = node.parentElement;
  }
  return [own, background ?? "rgb(255, 255, 255)"];
}"""

# "before": the text colour of the element's ``::before`` (a mark such as the ⚠).
Paint = Literal["color", "fill", "stroke", "background", "before"]


# A live page renders its values again at each reading: the element found may be
# replaced before the script runs on it, and a detached element has no computed
# style (empty strings). Then the selector is looked up again.
_DETACHED_RETRIES = 20


def colours(page: Page, selector: str, paint: Paint = "color") -> tuple[str, str]:
    """The computed colour of the first element matching ``selector`` and its background's."""
    for _ in range(_DETACHED_RETRIES):
        element = page.locator(selector).first
        own, background = element.evaluate(_COLOURS_JS, paint)
        if own:
            return str(own), str(background)
        page.wait_for_timeout(50)
    raise AssertionError(f"{selector}: no computed {paint} (the element stays detached)")


def contrast(page: Page, selector: str, paint: Paint = "color") -> float:
    """The contrast ratio of an element (its text, fill, stroke or box) against its background."""
    own, background = colours(page, selector, paint)
    rgb, alpha = css_rgb(own)
    if alpha != 1:
        raise AssertionError(f"{selector}: a translucent {paint} ({own}) has no fixed contrast")
    return contrast_ratio(rgb, css_rgb(background)[0])
