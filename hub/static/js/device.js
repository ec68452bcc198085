// The device page: energy flow, latest values and a rolling chart of the powers.
//
// The seam between history and live data: the dashboard door is opened first
// and its readings are held back while the chart is back-filled from
// GET /api/devices/{id}/readings (per-minute buckets of the last hour); then
// only the held-back readings newer than the history's last point are added.
// Nothing is missed between the two (the socket was already open) and nothing
// is drawn twice (points are unique by ts). After a reconnect, the readings
// stored while the socket was down are fetched the same way.

import { PowerChart } from "./chart.js";
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
import { deviceTables } from "./devices.js";
import { EnergyPanel } from "./energypanel.js";
import { describeField, displayValue, formatQuantity, groupExtra } from "./display.js";
import { deviceLine, failingSections, failingText, siteCondition, staleAfterMs } from "./health.js";

// The power chart's ranges: bucket sizes keep each a few hundred points (a week
// of 30-minute averages is 336), so a long range stays light for hub and page.
// Only the hour follows live readings; longer ranges are fetched again each
// `refreshMs` (a new bucket's worth).
const RANGES = {
  hour: { windowMs: 3_600_000, bucket: "60s", joinMs: 150_000, title: "last hour", foot: "Minute averages from storage, then every reading as it arrives" },
  day: { windowMs: 86_400_000, bucket: "5m", joinMs: 750_000, refreshMs: 300_000, title: "last 24 hours", foot: "5-minute averages from storage, refreshed every 5 minutes" },
  week: { windowMs: 604_800_000, bucket: "30m", joinMs: 4_500_000, refreshMs: 1_800_000, title: "last 7 days", foot: "30-minute averages from storage, refreshed every 30 minutes" },
};
const MAX_CATCH_UP = 5000; // raw readings fetched after a reconnect; longer gaps use buckets
const SECTIONS = ["inverter", "grid", "solar", "battery", "extra"];

const deviceId = decodeURIComponent(window.location.pathname.replace(/\/+$/, "").split("/").pop());
const byId = (id) => document.getElementById(id);

document.title = `EMS Switchboard · ${deviceId}`;
byId("device-name").textContent = deviceId;

const css = getComputedStyle(document.documentElement);
const color = (name) => css.getPropertyValue(name).trim();
const chart = new PowerChart(byId("chart"), {
  windowMs: RANGES.hour.windowMs,
  maxJoinMs: RANGES.hour.joinMs,
  series: [
    { key: "solar", label: "Solar", color: color("--solar") },
    { key: "battery", label: "Battery", color: color("--battery") },
    { key: "grid", label: "Grid", color: color("--grid") },
    { key: "house", label: "House", color: color("--house") },
  ],
});

const state = {
  range: "hour", // of the power chart: a key of RANGES
  fills: 0, // back-fills done (the page's tests wait for one after picking a range)
  refresh: 0, // timer of a long range's next fetch
  seamTs: null, // ts of the history's last point: live points must be newer
  held: null, // live readings held back while a back-fill runs
  fill: 0, // generation of the running back-fill
  latestTs: null, // ts of the reading shown in the flow and the values
  historyPoints: 0,
  livePoints: 0,
  historyBeforeFirstLive: null, // how many history points the chart had when live data began
  connected: false,
  online: null, // the agent's socket, from status frames; null: unknown (no hub)
  health: null, // the agent's latest health frame (docs/protocol.md, "Device health")
  lastArrivalMs: null, // when the newest live reading arrived (this browser's clock)
  // section -> {values, ts, arrivedMs}: the newest values of each section, kept
  // when a reading comes without it (its device failing), to be shown greyed.
  sections: new Map(),
  latest: null, // the newest reading
  openGroups: new Set(), // Extra groups the user opened
  socketState: "connecting",
};

// --- The chart and its back-fill ----------------------------------------------

function pointOf(record, source) {
  return { ts: parseTs(record.ts), source, ...powersOf(record) };
}

function countPoints() {
  const newest = chart.newestTs;
  byId("chart-newest").textContent = newest === null ? "no data yet" : `newest ${formatClock(newest)}`;
}

async function backfill() {
  const generation = ++state.fill;
  state.held = [];
  const now = Date.now();
  // Readings may be stamped a little ahead of this browser's clock (docs/protocol.md
  // allows 5 minutes against the hub's), so the range reaches past now.
  const end = new Date(now + 6 * 60_000).toISOString();
  const newest = chart.newestTs;
  const range = RANGES[state.range];
  clearTimeout(state.refresh);
  try {
    let records;
    let source = "history";
    if (state.range !== "hour" || newest === null || now - newest > range.windowMs / 4) {
      const start = new Date(now - range.windowMs).toISOString();
      const path = `/api/devices/${encodeURIComponent(deviceId)}/readings`;
      const answer = await getJSON(path, { start, end, bucket: range.bucket });
      records = answer.buckets ?? [];
    } else {
      // Back after a short outage: what was stored meanwhile, reading by reading.
      const start = new Date(newest + 1).toISOString();
      const path = `/api/devices/${encodeURIComponent(deviceId)}/readings`;
      const answer = await getJSON(path, { start, end, limit: MAX_CATCH_UP });
      records = answer.readings ?? [];
      source = "catch-up";
    }
    if (generation !== state.fill) return; // a newer connection took over
    if (state.range !== "hour") chart.setWindow(range.windowMs, range.joinMs); // whole again
    for (const record of records) {
      if (chart.insert(pointOf(record, source))) state.historyPoints += 1;
    }
    if (state.seamTs === null && records.length) {
      state.seamTs = parseTs(records[records.length - 1].ts);
    }
    showNotice(null);
  } catch (err) {
    if (generation !== state.fill) return;
    showNotice(`History unavailable: ${err.message}`);
  } finally {
    if (generation === state.fill) {
      const held = state.held ?? [];
      state.held = null;
      for (const frame of held) addLive(frame);
      countPoints();
      state.fills += 1;
      if (range.refreshMs) state.refresh = setTimeout(backfill, range.refreshMs);
    }
  }
}

// A batch (an agent's outage backlog) was stored: fetch that range, so the
// chart has no hole where the outage was (docs/protocol.md, "history" frames).
async function fillHistory(frame) {
  const endMs = parseTs(frame.end);
  if (state.range !== "hour") return; // a long range gets it at its next refresh
  if (!Number.isFinite(endMs) || endMs < Date.now() - RANGES.hour.windowMs) return;
  const path = `/api/devices/${encodeURIComponent(deviceId)}/readings`;
  const end = new Date(endMs + 1).toISOString(); // end is exclusive in the API, inclusive here
  try {
    const answer = await getJSON(path, { start: frame.start, end, limit: MAX_CATCH_UP });
    for (const record of answer.readings ?? []) {
      if (chart.insert(pointOf(record, "backlog"))) state.historyPoints += 1;
    }
    countPoints();
  } catch (err) {
    showNotice(`History unavailable: ${err.message}`);
  }
}

function addLive(frame) {
  if (state.range !== "hour") return; // averages only: a week of readings would be heavy
  const point = pointOf(frame, "live");
  if (Number.isNaN(point.ts)) return;
  if (state.seamTs !== null && point.ts <= state.seamTs) return; // already in the history
  if (chart.insert(point)) {
    if (state.livePoints === 0) state.historyBeforeFirstLive = state.historyPoints;
    state.livePoints += 1;
  }
  countPoints();
}

// The range picker: another span, fetched whole; back on the hour, live again.
function pickRange(name) {
  if (!(name in RANGES) || name === state.range) return;
  state.range = name;
  const range = RANGES[name];
  chart.setWindow(range.windowMs, range.joinMs);
  state.seamTs = null;
  for (const button of document.querySelectorAll("#chart-range button")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === name));
  }
  byId("chart-heading").textContent = `Power, ${range.title}`;
  byId("chart").setAttribute("aria-label", `power chart of the ${range.title}`);
  byId("chart-foot-text").textContent = range.foot;
  byId("chart-panel").dataset.range = name;
  byId("chart-csv").href = chartCsvUrl();
  backfill();
}

/** readings.csv of the chart's span (the hub takes RFC 3339 instants). */
function chartCsvUrl() {
  const now = Date.now();
  const params = new URLSearchParams({
    start: new Date(now - RANGES[state.range].windowMs).toISOString(),
    end: new Date(now + 6 * 60_000).toISOString(),
  });
  return `/api/devices/${encodeURIComponent(deviceId)}/readings.csv?${params}`;
}

for (const button of document.querySelectorAll("#chart-range button")) {
  button.addEventListener("click", () => pickRange(button.dataset.range));
}
// The link's span is taken when it is followed, so it is never a stale one.
byId("chart-csv").href = chartCsvUrl();
byId("chart-csv").addEventListener("click", (event) => {
  event.currentTarget.href = chartCsvUrl();
});

// --- Energy flow ---------------------------------------------------------------

const flow = byId("flow");
const flowLine = (name) => flow.querySelector(`[data-flow="${name}"]`);
const flowLabel = (name) => flow.querySelector(`[data-label="${name}"]`);
const flowNote = (name) => flow.querySelector(`[data-note="${name}"]`);
const nodeValue = (name) => flow.querySelector(`[data-value="${name}"]`);
const IDLE_W = 5; // below this a flow is shown as still

// Each line is drawn towards the junction, except the house's, which leaves it:
// "forward" moves the dashes along the drawn direction.
function setFlow(name, watts, forwardWhenPositive) {
  const line = flowLine(name);
  let direction = "none";
  if (watts !== null) {
    if (Math.abs(watts) < IDLE_W) direction = "idle";
    else direction = watts > 0 === forwardWhenPositive ? "forward" : "reverse";
  }
  line.dataset.direction = direction;
  // Faster dashes for bigger flows, within reason.
  const size = Math.min(1, Math.abs(watts ?? 0) / 5000);
  line.style.animationDuration = `${(2.4 - 1.8 * size).toFixed(2)}s`;
  const label = flowLabel(name); // only the battery's: the other nodes show their own power
  if (label) label.textContent = watts === null ? "" : formatPower(Math.abs(watts));
}

function renderFlow(reading) {
  const p = powersOf(reading);
  setFlow("solar", p.solar, true);
  setFlow("grid", p.grid, true);
  setFlow("battery", p.battery, true);
  setFlow("house", p.house, true);
  nodeValue("solar").textContent = formatPower(p.solar);
  // The grid's sign is told by the moving dashes and the note ("importing"/"exporting").
  nodeValue("grid").textContent = formatPower(p.grid === null ? null : Math.abs(p.grid));
  nodeValue("house").textContent = formatPower(p.house);
  nodeValue("soc").textContent = formatPercent(p.soc);
  let gridNote = "";
  if (p.grid !== null && Math.abs(p.grid) >= IDLE_W) gridNote = p.grid > 0 ? "importing" : "exporting";
  flowNote("grid").textContent = gridNote;
  let batteryNote = "";
  if (p.battery !== null && Math.abs(p.battery) >= IDLE_W) {
    batteryNote = p.battery > 0 ? "discharging" : "charging";
  }
  flowNote("battery").textContent = batteryNote;
  // What goes into the inverter (solar, and the battery's discharge) minus what it
  // delivers: conversion losses, or a load on the DC side. Said, so the flow adds up.
  const delivered = reading?.inverter?.ac_power_w;
  let losses = null;
  if (p.solar !== null && typeof delivered === "number") losses = p.solar + (p.battery ?? 0) - delivered;
  flowNote("losses").textContent =
    losses !== null && Math.abs(losses) >= IDLE_W ? `losses/other ${formatPower(losses)}` : "";
  const fill = byId("soc-fill");
  const height = p.soc === null ? 0 : (62 * p.soc) / 100;
  fill.setAttribute("height", height.toFixed(1));
  fill.setAttribute("y", (309 - height).toFixed(1));
  fill.dataset.level = p.soc === null ? "none" : p.soc < 20 ? "low" : "ok";
  flow.setAttribute(
    "aria-label",
    `solar ${formatPower(p.solar)}, grid ${gridNote || "idle"} ${formatPower(p.grid)}, ` +
      `battery ${batteryNote || "idle"} ${formatPower(p.battery)} at ${formatPercent(p.soc)}, ` +
      `house ${formatPower(p.house)}` +
      (losses !== null && Math.abs(losses) >= IDLE_W ? `, losses or other ${formatPower(losses)}` : ""),
  );
}

// --- Latest values ---------------------------------------------------------------

function isStale(section, now) {
  const entry = state.sections.get(section);
  if (!entry) return false;
  return (
    failingSections(state.health).has(section) || // its device is not read
    (state.latest !== null && entry.ts !== state.latest.ts) || // the newest reading lacks it
    now - entry.arrivedMs > staleAfterMs(state.health) // nothing new for three intervals
  );
}

function keepSections(reading) {
  const arrivedMs = Date.now();
  for (const section of SECTIONS) {
    const values = reading[section];
    if (values && typeof values === "object") state.sections.set(section, { values, ts: reading.ts, arrivedMs });
  }
}

function renderValues(reading) {
  const cards = [];
  const now = Date.now();
  for (const section of SECTIONS) {
    const entry = state.sections.get(section);
    if (!entry) continue;
    const values = entry.values;
    const stale = isStale(section, now);
    const context = { phasePowers: state.sections.get("grid")?.values?.phase_power_w };
    const row = (name) => {
      const value = values[name];
      const { label } = describeField(name);
      const shown = displayValue(section, name, value, context);
      return el(
        "div",
        { class: "value-row", "data-field": `${section}.${name}`, "data-value": JSON.stringify(value) },
        el("dt", { title: `${section}.${name}`, text: label }),
        el("dd", { text: shown.text, title: shown.title }),
      );
    };
    let rows;
    if (section === "extra") {
      // Dozens of driver-specific values: grouped by device and by numbered series,
      // each group folded until opened (and kept open across updates).
      rows = groupExtra(Object.keys(values)).map((group) => {
        const details = el(
          "details",
          { class: "value-group", "data-group": group.key },
          el("summary", { text: `${group.label} (${group.names.length})` }),
          ...group.names.map(row),
        );
        details.open = state.openGroups.has(group.key);
        details.addEventListener("toggle", () => {
          if (details.open) state.openGroups.add(group.key);
          else state.openGroups.delete(group.key);
        });
        return details;
      });
    } else rows = Object.keys(values).map(row);
    const age = stale ? el("span", { class: "age", text: `as of ${formatAgo(parseTs(entry.ts), now)}` }) : null;
    cards.push(
      el(
        "article",
        { class: "panel values-card", "data-section": section, "data-stale": String(stale), "data-ts": entry.ts },
        el("h3", {}, section, age),
        el("dl", {}, ...rows),
      ),
    );
  }
  const house = powersOf(reading).house;
  if (house !== null) {
    cards.push(
      el(
        "article",
        {
          class: "panel values-card derived",
          "data-section": "derived",
          // As live as the two values it comes from.
          "data-stale": String(isStale("grid", now) || isStale("inverter", now)),
        },
        el("h3", { text: "derived" }),
        el(
          "dl",
          {},
          el(
            "div",
            { class: "value-row", "data-field": "derived.house_w", "data-value": JSON.stringify(house) },
            el("dt", { title: "grid.power_w + inverter.ac_power_w", text: "House load" }),
            el("dd", { text: formatQuantity(house, "W") }),
          ),
        ),
      ),
    );
  }
  byId("values").replaceChildren(...cards);
  // Several devices per role: each device's own values beside the totals.
  const tables = deviceTables(reading);
  byId("devices").replaceChildren(...tables);
  byId("devices-section").hidden = tables.length === 0;
  const ts = parseTs(reading.ts);
  const stamp = byId("values-ts");
  stamp.textContent = `at ${formatClock(ts)}`;
  stamp.dataset.ts = reading.ts;
}

function showReading(frame) {
  const ts = parseTs(frame.ts);
  if (state.latestTs !== null && ts < state.latestTs) return;
  state.latestTs = ts;
  state.latest = frame;
  state.lastArrivalMs = Date.now();
  keepSections(frame);
  renderFlow(frame);
  renderValues(frame);
  renderCondition();
}

// --- Health: is what the page shows live? ----------------------------------------------

function renderCondition() {
  const now = Date.now();
  const { condition, text } = siteCondition({
    online: state.online,
    health: state.health,
    lastSeenMs: state.lastArrivalMs,
    now,
  });
  const pill = byId("status");
  pill.dataset.online = state.online === null ? "unknown" : state.online ? "online" : "offline";
  pill.dataset.condition = condition;
  pill.className = `pill ${condition}`;
  pill.textContent = text;
  renderBadge(condition);
  // Only live values move: offline, failing or stale, the flow stands still.
  flow.dataset.stale = String(condition !== "ok");
  const problem = byId("health-banner");
  const failing = condition === "failing" ? failingText(state.health) : "";
  const quiet =
    condition === "stale" && state.lastArrivalMs !== null
      ? `No reading for ${formatAgo(state.lastArrivalMs, now).replace(" ago", "")}: the values below are not live.`
      : "";
  problem.textContent = failing ? `${failing}: the values below are the last good ones, greyed.` : quiet;
  problem.hidden = !problem.textContent;
  const list = byId("health-list");
  list.replaceChildren(
    ...(state.health?.devices ?? []).map((device) =>
      el("li", { "data-device": device.name, "data-state": device.state, text: deviceLine(device, now) }),
    ),
  );
  for (const card of document.querySelectorAll(".values-card[data-section]")) {
    const section = card.dataset.section;
    if (section === "derived") continue;
    if (String(isStale(section, now)) !== card.dataset.stale && state.latest) {
      renderValues(state.latest); // a section went stale or fresh: draw the cards again
      break;
    }
  }
  for (const age of document.querySelectorAll(".values-card[data-stale=\"true\"] .age")) {
    const ts = age.closest(".values-card").dataset.ts;
    age.textContent = `as of ${formatAgo(parseTs(ts), now)}`;
  }
}

// --- Status and connection -----------------------------------------------------------

function showNotice(text) {
  const notice = byId("notice");
  notice.hidden = !text;
  notice.textContent = text ?? "";
}

function setDeviceStatus(online, since) {
  state.online = online;
  const sinceText = since ? `since ${formatClock(parseTs(since))}` : "";
  byId("status-since").textContent = online === null ? "" : sinceText;
  renderCondition();
  const banner = byId("offline-banner");
  banner.hidden = online !== false;
  banner.textContent =
    online === false
      ? `${deviceId} is offline${sinceText ? ` ${sinceText}` : ""}: its edge agent is not ` +
        "connected to the hub. The values below are the last ones received."
      : "";
}

// The header's badge is green only while the page shows live values: connected
// to the hub, the device online, and none of its devices failing or silent.
function renderBadge(condition = byId("status").dataset.condition) {
  if (state.socketState !== "live") return;
  const badge = byId("connection");
  const live = condition === "ok";
  badge.dataset.state = live ? "live" : "idle";
  const why = { offline: "device offline", failing: "device failing", stale: "no fresh data" }[condition];
  badge.textContent = live ? "live" : `hub connected · ${why ?? "waiting for data"}`;
}

let countdown = 0;
let lostHub = false;
function setConnection({ state: socketState, retryInMs }) {
  const badge = byId("connection");
  clearInterval(countdown);
  badge.dataset.state = socketState;
  state.socketState = socketState;
  if (socketState === "live") {
    renderBadge();
    if (lostHub) showNotice(null);
    lostHub = false;
  } else if (socketState === "connecting") {
    badge.textContent = "connecting…";
  } else {
    // The hub is gone (restarting?): the device's state is unknown until it answers.
    setDeviceStatus(null, null);
    lostHub = true;
    showNotice("No connection to the hub: reconnecting by itself. The values shown are the last received.");
    const until = Date.now() + retryInMs;
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      badge.textContent = `hub unreachable, retrying in ${seconds} s`;
    };
    tick();
    countdown = setInterval(tick, 500);
  }
}

new DashboardSocket(deviceId, {
  onOpen: () => backfill(),
  onStatus: (frame) => setDeviceStatus(Boolean(frame.online), frame.since),
  onHealth: (frame) => {
    state.health = frame;
    renderCondition();
  },
  onHistory: (frame) => fillHistory(frame),
  onReading: (frame) => {
    showReading(frame);
    if (state.held) state.held.push(frame);
    else addLive(frame);
  },
  onState: setConnection,
}).start();

setInterval(renderCondition, 1000); // ages grow, values go stale

// --- Energy per hour, day and month -------------------------------------------------

const energy = new EnergyPanel(deviceId, {
  section: byId("energy"),
  bars: byId("energy-bars"),
  totals: byId("energy-totals"),
  flow: byId("energy-flow"),
  flowRange: byId("energy-flow-range"),
  range: byId("energy-range"),
  zone: byId("energy-zone"),
  prev: byId("energy-prev"),
  next: byId("energy-next"),
  today: byId("energy-today"),
  views: [...byId("energy").querySelectorAll(".segmented button")],
  energyCsv: byId("energy-csv"),
  readingsCsv: byId("readings-csv"),
  notice: byId("energy-notice"),
});
energy.load();

// For tests and the curious: what the chart holds, read-only.
window.emsDashboard = Object.freeze({
  deviceId,
  points: () => chart.points.map((point) => ({ ...point })),
  seamTs: () => state.seamTs,
  latestTs: () => state.latestTs,
  historyBeforeFirstLive: () => state.historyBeforeFirstLive,
  range: () => state.range,
  windowMs: () => chart.windowMs,
  fills: () => state.fills,
});
