// The fleet page: every device the hub knows, with its status and headline
// numbers. GET /api/devices every few seconds finds devices and their stored
// state; each device's dashboard door (up to LIVE_SOCKETS of them) makes the
// numbers and the online flag live between polls.

import {
  DashboardSocket,
  el,
  formatAgo,
  formatClock,
  formatPercent,
  formatPower,
  getJSON,
  parseTs,
  powersOf,
} from "./common.js";
import { fetchEnergy, formatKwh } from "./energy.js";
import { failingText, siteCondition } from "./health.js";

const POLL_MS = 5000;
const LIVE_SOCKETS = 24; // a big fleet is polled only: one socket per card would not scale
const ENERGY_MS = 60_000; // today's energy per card: a minute's readings barely move it

const devices = new Map(); // device_id -> state
const list = document.getElementById("fleet");
const connection = document.getElementById("connection");
const notice = document.getElementById("notice");


function newDevice(deviceId) {
  const metric = (name, label) => {
    const value = el("dd", { class: "metric-value", text: "—" });
    const box = el("div", { class: "metric", "data-metric": name }, el("dt", { text: label }), value);
    return { box, value };
  };
  const solar = metric("solar", "Solar");
  const soc = metric("soc", "Battery");
  const grid = metric("grid", "Grid");
  const house = metric("house", "House");
  const pill = el("span", { class: "pill", text: "…" });
  const seen = el("time", { class: "seen", text: "never" });
  const problem = el("p", { class: "card-problem", hidden: "" });
  // Today's energy in the site's zone (docs/protocol.md, "Energy over HTTP").
  const today = (name, label, title) =>
    el("div", { class: "today-value", "data-energy": name, title }, el("dt", { text: label }), el("dd", { text: "—" }));
  const energy = el(
    "dl",
    { class: "today-energy", "data-state": "loading", title: "today so far, in the site's time zone" },
    today("pv_wh", "PV today"),
    today("house_wh", "House"),
    today("import_wh", "Import"),
    today("export_wh", "Export"),
    today("self_consumption_pct", "Self-use", "self-consumption: the PV not exported, (PV - export) / PV"),
    today("autarky_pct", "Autarky", "the house's energy not imported, (house - import) / house"),
  );
  const card = el(
    "li",
    { class: "device-card", "data-device-id": deviceId },
    el(
      "a",
      { class: "card-link", href: `/devices/${encodeURIComponent(deviceId)}` },
      el("div", { class: "card-head" }, el("span", { class: "device-name", text: deviceId }), pill),
      problem,
      el("dl", { class: "headline" }, solar.box, soc.box, grid.box, house.box),
      energy,
      el("div", { class: "card-foot" }, "last seen ", seen),
    ),
  );
  const state = {
    deviceId,
    card,
    pill,
    seen,
    problem,
    energy,
    energyTimer: 0,
    health: null, // the agent's latest health frame (docs/protocol.md, "Device health")
    cells: { solar: solar.value, soc: soc.value, grid: grid.value, house: house.value },
    online: null,
    lastSeenMs: null,
    readingTs: null,
    socket: null,
  };
  devices.set(deviceId, state);
  return state;
}

function setOnline(state, online) {
  state.online = Boolean(online);
  state.card.dataset.online = String(state.online);
  renderCondition(state);
}

function setHealth(state, health) {
  state.health = health ?? null;
  renderCondition(state);
}

// The card's colour and pill say how the site is doing, not only whether its
// agent's socket is up: a failing device is named, frozen numbers are greyed.
function renderCondition(state) {
  // A card without a socket learns of new readings only at each poll.
  const slack = state.socket === null && state.lastSeenMs !== null ? POLL_MS : 0;
  const { condition, text } = siteCondition({
    online: state.online,
    health: state.health,
    lastSeenMs: state.lastSeenMs === null ? null : state.lastSeenMs + slack,
  });
  state.card.dataset.condition = condition;
  state.pill.textContent = text;
  state.pill.className = `pill ${condition}`;
  const problem = condition === "failing" ? failingText(state.health) : "";
  state.problem.textContent = problem;
  state.problem.title = (state.health?.devices ?? []).map((d) => d.error).filter(Boolean)[0] ?? "";
  state.problem.hidden = !problem;
}

function setReading(state, reading) {
  if (!reading || typeof reading.ts !== "string") return;
  const ts = parseTs(reading.ts);
  if (state.readingTs !== null && ts < state.readingTs) return; // older than what is shown
  state.readingTs = ts;
  state.lastSeenMs = Math.max(state.lastSeenMs ?? ts, ts);
  const powers = powersOf(reading);
  state.cells.solar.textContent = formatPower(powers.solar);
  state.cells.soc.textContent = formatPercent(powers.soc);
  const gridCell = state.cells.grid;
  if (powers.grid === null) gridCell.replaceChildren("—");
  else if (powers.grid === 0) gridCell.replaceChildren("0 W");
  else {
    const word = powers.grid > 0 ? "import" : "export";
    gridCell.replaceChildren(formatPower(Math.abs(powers.grid)), " ", el("small", { text: word }));
  }
  state.cells.grid.dataset.direction =
    powers.grid === null ? "none" : powers.grid > 0 ? "import" : powers.grid < 0 ? "export" : "idle";
  state.cells.house.textContent = formatPower(powers.house);
  state.card.dataset.ts = reading.ts;
  renderSeen(state);
}

function renderSeen(state) {
  renderCondition(state); // the age of the newest reading decides "no fresh data"
  state.seen.textContent = formatAgo(state.lastSeenMs);
  if (state.lastSeenMs !== null) {
    state.seen.dateTime = new Date(state.lastSeenMs).toISOString();
    state.seen.title = formatClock(state.lastSeenMs);
  }
}

async function loadEnergy(state) {
  clearTimeout(state.energyTimer);
  try {
    const answer = await fetchEnergy(state.deviceId, { period: "day" }); // today, in its zone
    const total = answer.total;
    for (const row of state.energy.querySelectorAll("[data-energy]")) {
      const key = row.dataset.energy;
      const v = total[key];
      const text = key.endsWith("_pct") ? (v === null ? "—" : `${Math.round(v)}%`) : formatKwh(v);
      row.querySelector("dd").textContent = text;
      row.dataset.value = v ?? "";
    }
    state.energy.dataset.state = "ready";
    state.energy.dataset.zone = answer.timezone;
    state.energy.title = `today so far (${answer.timezone})`;
  } catch (err) {
    if (err.status === 401) return; // the sign-in form says what is missing (common.js)
    state.energy.dataset.state = "error";
  }
  if (devices.get(state.deviceId) === state) state.energyTimer = setTimeout(() => loadEnergy(state), ENERGY_MS);
}

function follow(state) {
  state.socket = new DashboardSocket(state.deviceId, {
    onStatus: (frame) => setOnline(state, frame.online),
    onReading: (frame) => {
      // Its arrival, not its ts, says the site is live: an edge clock may be off.
      state.lastSeenMs = Math.max(state.lastSeenMs ?? 0, parseTs(frame.received_at) || 0);
      setReading(state, frame);
    },
    onHealth: (frame) => setHealth(state, frame),
  }).start();
}

function showNotice(text) {
  notice.hidden = !text;
  notice.textContent = text ?? "";
}

function setConnection(ok, text) {
  connection.dataset.state = ok ? "live" : "waiting";
  connection.textContent = text;
}

async function poll() {
  let answer;
  try {
    answer = await getJSON("/api/devices");
  } catch (err) {
    if (err.status === 401) return; // the sign-in form says what is missing (common.js)
    setConnection(false, "hub unreachable, retrying");
    showNotice(err.status === 403 ? err.message : null);
    return;
  }
  setConnection(true, "live");
  showNotice(null);
  const entries = [...answer].sort((a, b) => a.device_id.localeCompare(b.device_id));
  for (const entry of entries) {
    let state = devices.get(entry.device_id);
    if (!state) {
      state = newDevice(entry.device_id);
      loadEnergy(state);
      if (devices.size <= LIVE_SOCKETS) follow(state);
    }
    if (entry.health !== undefined && (state.health === null || state.socket === null)) {
      setHealth(state, entry.health);
    }
    setOnline(state, entry.online);
    if (entry.last_seen) {
      const seen = parseTs(entry.last_seen);
      state.lastSeenMs = Math.max(state.lastSeenMs ?? seen, seen);
    }
    setReading(state, entry.last_reading);
    renderSeen(state);
  }
  // A device the hub no longer knows (token revoked, no reading stored) goes away.
  const known = new Set(entries.map((entry) => entry.device_id));
  for (const [id, state] of devices) {
    if (known.has(id)) continue;
    if (state.socket) state.socket.stop();
    clearTimeout(state.energyTimer);
    state.card.remove();
    devices.delete(id);
  }
  // Keep the cards in device-id order, new ones included.
  const order = [...devices.keys()].sort((a, b) => a.localeCompare(b));
  order.forEach((id, index) => {
    const card = devices.get(id).card;
    if (list.children[index] !== card) list.insertBefore(card, list.children[index] ?? null);
  });
  document.getElementById("device-count").textContent = `(${devices.size})`;
  document.getElementById("empty").hidden = devices.size > 0;
}

async function pollForever() {
  await poll();
  setTimeout(pollForever, POLL_MS);
}

setInterval(() => devices.forEach(renderSeen), 1000);
pollForever();
