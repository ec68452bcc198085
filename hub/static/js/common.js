// Shared by the fleet and device pages: signing in, the API, the dashboard
// door with reconnection, and how numbers are shown.
//
// Everything here uses only the hub's public doors (docs/protocol.md), so this
// file is also a small reference client.

// --- Viewer access (docs/protocol.md, "Viewer access") ----------------------
//
// When the hub has a viewer token, the page asks for it in a small form and
// posts it once to POST /api/session; the hub answers with an HttpOnly session
// cookie that the browser then sends with every API call and every dashboard
// socket by itself. The token is never put in a URL (page, API or socket): URLs
// end up in browser history, proxy logs and Referer headers.

/** POST the viewer token for a session cookie; the HTTP status (204 signed in). */
export async function signIn(token) {
  const response = await fetch("/api/session", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ token }),
    cache: "no-store",
  });
  return response.status;
}

// An old bookmark with ?token=T: trade it for the cookie once and take it out
// of the address bar (and so out of history) before anything else runs.
async function tradeTokenInUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token === null) return;
  url.searchParams.delete("token");
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  try {
    await signIn(token);
  } catch {
    // hub unreachable: the page's own requests say so
  }
}

/** Settles once the page may talk to the hub (after trading a ?token= in its URL). */
export const sessionReady = tradeTokenInUrl();

let signInShown = false;

/** Show the sign-in form (once) and say why in the connection badge. */
export function askForViewerToken() {
  const badge = document.getElementById("connection");
  if (badge) {
    badge.dataset.state = "sign-in";
    badge.textContent = "viewer token needed";
  }
  if (signInShown) return;
  signInShown = true;
  const input = el("input", {
    id: "viewer-token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: "",
  });
  const message = el("p", { class: "sign-in-message", role: "status" });
  const button = el("button", { type: "submit", text: "Sign in" });
  const form = el(
    "form",
    { id: "sign-in", class: "sign-in" },
    el("h2", { text: "This hub needs its viewer token" }),
    el("p", {
      text: "Ask the hub's operator for it. It is kept in a cookie of this browser, not in the page's address.",
    }),
    el("label", { for: "viewer-token", text: "Viewer token" }),
    el("div", { class: "sign-in-row" }, input, button),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    message.textContent = "Signing in…";
    let status;
    try {
      status = await signIn(input.value);
    } catch (err) {
      status = 0;
    }
    button.disabled = false;
    if (status === 204) {
      window.location.reload();
      return;
    }
    const messages = {
      401: "Wrong token.",
      429: "Too many wrong tokens from here: try again in a minute.",
      0: "The hub is unreachable.",
    };
    message.textContent = messages[status] ?? `The hub answered ${status}.`;
    input.select();
  });
  const main = document.querySelector("main") ?? document.body;
  main.prepend(form);
  input.focus();
}

/** Whether the hub wants a viewer token this page does not have (asked when a socket fails). */
async function needsSignIn() {
  try {
    const response = await fetch("/api/session", { cache: "no-store" });
    return response.status === 401;
  } catch {
    return false; // unreachable: not a question of tokens
  }
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** GET a JSON document from the hub's HTTP API. */
export async function getJSON(path, params = {}) {
  await sessionReady;
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
  }
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, `hub unreachable (${err.message})`);
  }
  if (response.status === 401) {
    askForViewerToken();
    throw new ApiError(401, "this hub needs its viewer token: sign in above");
  }
  if (!response.ok) {
    const hint =
      response.status === 403 ? "the hub refused this page's origin (see --allow-origin)" : `HTTP ${response.status}`;
    throw new ApiError(response.status, hint);
  }
  return response.json();
}

/** The URL of the dashboard door of a device (docs/protocol.md, "Doors"): no token in it. */
export function dashboardSocketUrl(deviceId) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/ws/dashboard/${encodeURIComponent(deviceId)}`;
}

// Reconnection: capped, jittered exponential backoff (a restarting hub is
// back within seconds; a hub that stays down is not hammered).
export const BACKOFF_FIRST_MS = 500;
export const BACKOFF_CAP_MS = 8000;

export function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * The dashboard door of one device, reconnecting by itself.
 *
 * Callbacks: onOpen(), onStatus(frame), onReading(frame), onHealth(frame),
 * onHistory(frame), onState({state: "connecting" | "live" | "waiting", retryInMs, closeCode}).
 */
export class DashboardSocket {
  constructor(deviceId, callbacks) {
    this.deviceId = deviceId;
    this.callbacks = callbacks;
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    sessionReady.then(() => this.connect());
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
  }

  emitState(state, extra = {}) {
    if (this.callbacks.onState) this.callbacks.onState({ state, ...extra });
  }

  connect() {
    if (this.stopped) return;
    this.emitState("connecting");
    const socket = new WebSocket(dashboardSocketUrl(this.deviceId));
    this.socket = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      opened = true;
      this.attempt = 0;
      this.emitState("live");
      if (this.callbacks.onOpen) this.callbacks.onOpen();
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket || typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not ours to judge; the protocol only sends JSON objects
      }
      const handler = {
        status: this.callbacks.onStatus,
        reading: this.callbacks.onReading,
        health: this.callbacks.onHealth, // docs/protocol.md, "Hub -> dashboard" extensions
        history: this.callbacks.onHistory,
      }[frame.type];
      if (handler) handler(frame); // other types: not ours, ignored
    });
    socket.addEventListener("close", async (event) => {
      if (socket !== this.socket || this.stopped) return;
      this.socket = null;
      // A refused handshake looks like an unreachable hub to a browser (1006
      // either way): ask the API which it was before planning a retry.
      if (!opened && (await needsSignIn())) {
        this.stopped = true;
        askForViewerToken();
        return;
      }
      if (this.stopped) return;
      const retryInMs = backoffDelay(this.attempt);
      this.attempt += 1;
      this.emitState("waiting", { retryInMs, closeCode: event.code });
      this.timer = setTimeout(() => this.connect(), retryInMs);
    });
    // A failed connection is followed by "close", where the retry is planned.
    socket.addEventListener("error", () => {});
  }
}

// --- Readings -------------------------------------------------------------

/** Milliseconds since the epoch of an RFC 3339 time (microseconds dropped). */
export function parseTs(text) {
  return Date.parse(text);
}

function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/**
 * The house load in watts: what the grid brings in plus what the inverter
 * delivers to the AC side (docs/protocol.md, "A reading"):
 *   house_w = grid.power_w + inverter.ac_power_w
 * Null unless the reading has both numbers.
 */
export function houseLoad(reading) {
  const grid = num(reading?.grid?.power_w);
  const inverter = num(reading?.inverter?.ac_power_w);
  return grid === null || inverter === null ? null : grid + inverter;
}

/** The powers the chart and the flow show, from a reading or a bucket. */
export function powersOf(reading) {
  return {
    solar: num(reading?.solar?.pv_power_w),
    battery: num(reading?.battery?.power_w),
    grid: num(reading?.grid?.power_w),
    house: houseLoad(reading),
    soc: num(reading?.battery?.soc_pct),
  };
}

// --- Formatting -----------------------------------------------------------

/** A power for headlines and the flow: "850 W", "-3.12 kW"; "—" when unknown. */
export function formatPower(watts) {
  if (watts === null || watts === undefined) return "—";
  // Rounded by size, then signed, so -194.5 W reads "-195 W" like 194.5 W reads "195 W".
  const size = Math.abs(watts);
  const text = size >= 1000 ? `${(size / 1000).toFixed(2)} kW` : `${Math.round(size)} W`;
  return watts < 0 && text !== "0 W" ? `-${text}` : text;
}

export function formatPercent(value) {
  return value === null || value === undefined ? "—" : `${value.toFixed(1)}%`;
}

/** "12 s ago", "3 min ago", ...; "never" when there is no time. */
export function formatAgo(ms, now = Date.now()) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "never";
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

export function formatClock(ms) {
  return new Date(ms).toLocaleString();
}

/** document.createElement with attributes and children, in one call. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}
