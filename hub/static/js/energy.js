// Energy on the dashboard: bars per hour, day or month from
// GET /api/devices/{id}/energy (docs/protocol.md, "Energy over HTTP"), a
// day's flow (where the PV went, where the house's energy came from), and
// the plain helpers behind them.
//
// Ranges are named by local dates of the site ("2026-12-03", "2026-12",
// "2026"): the hub widens them to whole days, months and years in the site's
// time zone and answers with that zone, so the page never has to know the
// zone's rules; it only counts calendar days, on UTC dates where no daylight
// saving change can shift them.

import { el, getJSON } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";

/** The quantities of an interval, above the axis what came in, below what went out. */
export const SOURCES = [
  { key: "pv_wh", label: "PV" },
  { key: "import_wh", label: "Import" },
  { key: "discharge_wh", label: "Discharge" },
];
export const USES = [
  { key: "house_wh", label: "House" },
  { key: "export_wh", label: "Export" },
  { key: "charge_wh", label: "Charge" },
];

/** Each view: the interval the API sums, and how a range steps. */
export const VIEWS = {
  day: { period: "hour", label: "Day" },
  week: { period: "day", label: "Week" },
  month: { period: "day", label: "Month" },
  year: { period: "month", label: "Year" },
};

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** "2026-12-03" -> a Date at that day's UTC midnight (a calendar date, no zone). */
export function parseDate(text) {
  const [y, m, d] = text.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

export function formatDate(date) {
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
}

function addDays(date, days) {
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() + days));
}

/** The Monday of the ISO week holding the date. */
function monday(date) {
  return addDays(date, -((date.getUTCDay() + 6) % 7));
}

/**
 * The API's parameters for a view around the local date `anchor` ("YYYY-MM-DD"):
 * a day of hours, a week (Monday to Sunday) or a month of days, a year of months.
 */
export function rangeParams(view, anchor) {
  const date = parseDate(anchor);
  const period = VIEWS[view].period;
  if (view === "day") return { start: anchor, period };
  if (view === "week") {
    const first = monday(date);
    return { start: formatDate(first), end: formatDate(addDays(first, 6)), period };
  }
  if (view === "month") return { start: anchor.slice(0, 7), period };
  return { start: anchor.slice(0, 4), period };
}

/** The anchor one view earlier (-1) or later (+1); a month keeps its first day. */
export function stepAnchor(view, anchor, direction) {
  const date = parseDate(anchor);
  if (view === "day") return formatDate(addDays(date, direction));
  if (view === "week") return formatDate(addDays(date, 7 * direction));
  if (view === "month") {
    return formatDate(new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + direction, 1)));
  }
  return formatDate(new Date(Date.UTC(date.getUTCFullYear() + direction, 0, 1)));
}

/** Today's date in an IANA zone, "YYYY-MM-DD" (the browser's tz database). */
export function todayIn(zone, now = new Date()) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).formatToParts(now);
  const part = (type) => parts.find((p) => p.type === type).value;
  return `${part("year")}-${part("month")}-${part("day")}`;
}

/** Watt-hours as "12.35 kWh"; "—" when unknown. */
export function formatKwh(wh) {
  if (wh === null || wh === undefined) return "—";
  return `${(wh / 1000).toFixed(2)} kWh`;
}

const value = (wh) => (typeof wh === "number" && Number.isFinite(wh) ? wh : 0);

/**
 * Where the PV went and where the house's energy came from, in Wh, summed over
 * intervals (hours, for a day). Within an interval the export is PV first (the
 * meter only exports a surplus; a battery rarely discharges into the grid),
 * then the battery's charge, and the rest of the PV went to the house; the
 * house takes that PV first, then the battery's discharge, then the grid. What
 * does not fit (conversion losses, a battery charged from the grid) is left
 * out, so each side adds up to at most its total. Per interval rather than over
 * the whole day: the noon's export cannot feed the evening's house.
 */
export function energyFlow(intervals) {
  const flow = {
    pv: { house: 0, battery: 0, grid: 0, total: 0, known: false },
    house: { pv: 0, battery: 0, grid: 0, total: 0, known: false },
  };
  for (const interval of intervals) {
    // Unknown (no reading gave it) is not zero: said as "—", not as 0 kWh.
    if (typeof interval.pv_wh === "number") flow.pv.known = true;
    if (typeof interval.house_wh === "number") flow.house.known = true;
    const pv = value(interval.pv_wh);
    const house = value(interval.house_wh);
    const toGrid = Math.min(value(interval.export_wh), pv);
    const toBattery = Math.min(value(interval.charge_wh), pv - toGrid);
    const pvForHouse = Math.min(pv - toBattery - toGrid, house);
    const fromBattery = Math.min(value(interval.discharge_wh), house - pvForHouse);
    const fromGrid = Math.min(value(interval.import_wh), house - pvForHouse - fromBattery);
    flow.pv.battery += toBattery;
    flow.pv.grid += toGrid;
    flow.pv.house += pvForHouse;
    flow.pv.total += pv;
    flow.house.pv += pvForHouse;
    flow.house.battery += fromBattery;
    flow.house.grid += fromGrid;
    flow.house.total += house;
  }
  return flow;
}

/** The tick label of an interval: its local hour, day or month, as the hub gave it. */
function intervalLabel(interval, period) {
  const local = interval.start; // "2026-12-03T05:00:00+01:00": the site's wall clock
  if (period === "hour") return local.slice(11, 13);
  if (period === "day") return String(Number(local.slice(8, 10)));
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  return months[Number(local.slice(5, 7)) - 1];
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, val] of Object.entries(attributes)) {
    if (val === null || val === undefined) continue;
    if (key === "text") node.textContent = val;
    else node.setAttribute(key, String(val));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/** A nice round scale top at or above `wh`. */
function niceTop(wh) {
  if (wh <= 0) return 100;
  const power = 10 ** Math.floor(Math.log10(wh));
  for (const factor of [1, 2, 2.5, 5, 10]) if (factor * power >= wh) return factor * power;
  return 10 * power;
}

/**
 * Bars of one answer of the energy route into an <svg>: per interval one
 * column, sources stacked up from the axis and uses stacked down. An
 * incomplete interval is hatched and flagged under the axis.
 */
export function drawBars(target, answer) {
  const intervals = answer.intervals ?? [];
  const width = 720;
  const height = 300;
  const left = 56;
  const right = 8;
  const top = 10;
  const bottom = 28;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const sum = (interval, list) => list.reduce((acc, q) => acc + value(interval[q.key]), 0);
  const up = Math.max(0, ...intervals.map((i) => sum(i, SOURCES)));
  const down = Math.max(0, ...intervals.map((i) => sum(i, USES)));
  const top_ = niceTop(Math.max(up, down));
  const scale = plotHeight / 2 / top_;
  const axis = top + plotHeight / 2;
  const slot = plotWidth / Math.max(1, intervals.length);
  const barWidth = Math.max(2, slot * 0.72);
  // The hatching behind an incomplete interval (styled in dashboard.css).
  const hatch = svg(
    "pattern",
    { id: "energy-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
    svg("line", { class: "energy-hatch-line", x1: 0, y1: 0, x2: 0, y2: 6 }),
  );
  const children = [svg("defs", {}, hatch)];
  for (const mark of [-top_, -top_ / 2, 0, top_ / 2, top_]) {
    const y = axis - mark * scale;
    children.push(svg("line", { class: mark === 0 ? "energy-axis" : "energy-rule", x1: left, x2: width - right, y1: y, y2: y }));
    children.push(svg("text", { class: "energy-tick", x: left - 6, y: y + 4, "text-anchor": "end", text: (Math.abs(mark) / 1000).toFixed(top_ < 1000 ? 2 : 1) }));
  }
  children.push(svg("text", { class: "energy-tick", x: 4, y: top + 10, text: "kWh" }));
  const every = Math.ceil(intervals.length / 16); // at most ~16 labels
  intervals.forEach((interval, index) => {
    const x = left + index * slot + (slot - barWidth) / 2;
    const title = [
      `${interval.start} – ${interval.end}`,
      ...[...SOURCES, ...USES].map((q) => `${q.label} ${formatKwh(interval[q.key])}`),
      interval.complete ? "" : "incomplete: part of this interval was not measured",
    ]
      .filter(Boolean)
      .join("\n");
    const column = svg("g", {
      class: "energy-column",
      "data-start": interval.start,
      "data-complete": String(Boolean(interval.complete)),
    });
    column.append(svg("title", { text: title }));
    column.append(svg("rect", { class: "energy-slot", x: left + index * slot, y: top, width: slot, height: plotHeight }));
    let y = axis;
    for (const q of SOURCES) {
      const h = value(interval[q.key]) * scale;
      y -= h;
      column.append(svg("rect", { class: "energy-bar", "data-quantity": q.key, "data-wh": interval[q.key] ?? "", x, y, width: barWidth, height: h }));
    }
    y = axis;
    for (const q of USES) {
      const h = value(interval[q.key]) * scale;
      column.append(svg("rect", { class: "energy-bar", "data-quantity": q.key, "data-wh": interval[q.key] ?? "", x, y, width: barWidth, height: h }));
      y += h;
    }
    if (!interval.complete) {
      column.append(svg("text", { class: "energy-incomplete", x: x + barWidth / 2, y: top + plotHeight + 24, "text-anchor": "middle", text: "!" }));
    }
    if (index % every === 0) {
      column.append(svg("text", { class: "energy-tick", x: x + barWidth / 2, y: top + plotHeight + 12, "text-anchor": "middle", text: intervalLabel(interval, answer.period) }));
    }
    children.push(column);
  });
  target.setAttribute("viewBox", `0 0 ${width} ${height}`);
  target.replaceChildren(...children);
}

/** One labelled stacked bar of the flow: parts of a total, each with its kWh. */
function flowBar(name, title, total, parts, known) {
  const bar = el("div", { class: "share-bar" });
  for (const part of parts) {
    const segment = el("span", {
      class: "share",
      "data-part": part.key,
      "data-wh": part.wh.toFixed(1),
      title: `${part.label} ${formatKwh(part.wh)}`,
    });
    // Widths through the CSSOM: a style attribute would break the CSP.
    segment.style.flexGrow = String(total > 0 ? part.wh / total : 0);
    bar.append(segment);
  }
  const legend = el(
    "ul",
    { class: "share-legend" },
    ...parts.map((part) =>
      el(
        "li",
        { "data-part": part.key },
        `${part.label} `,
        el("strong", { "data-wh": known ? part.wh.toFixed(1) : "", text: formatKwh(known ? part.wh : null) }),
      ),
    ),
  );
  return el(
    "div",
    { class: "share-row", "data-share": name, "data-known": String(known) },
    el(
      "h3",
      {},
      `${title} `,
      el("span", { class: "share-total", "data-wh": known ? total.toFixed(1) : "", text: formatKwh(known ? total : null) }),
    ),
    bar,
    legend,
  );
}

/** The flow of `energyFlow` as two stacked bars with their numbers. */
export function drawFlow(target, flow) {
  target.replaceChildren(
    flowBar("pv", "PV went to", flow.pv.total, [
      { key: "house", label: "House", wh: flow.pv.house },
      { key: "battery", label: "Battery", wh: flow.pv.battery },
      { key: "grid", label: "Grid", wh: flow.pv.grid },
    ], flow.pv.known),
    flowBar("house", "The house got its energy from", flow.house.total, [
      { key: "pv", label: "PV", wh: flow.house.pv },
      { key: "battery", label: "Battery", wh: flow.house.battery },
      { key: "grid", label: "Grid", wh: flow.house.grid },
    ], flow.house.known),
  );
}

/** Totals of a range as <div data-total=...> rows of a <dl>. */
export function totalRows(total) {
  const row = (key, label, text) =>
    el("div", { class: "energy-total", "data-total": key, "data-value": total[key] ?? "" }, el("dt", { text: label }), el("dd", { text }));
  const pct = (v) => (v === null || v === undefined ? "—" : `${v.toFixed(1)}%`);
  return [
    row("pv_wh", "PV", formatKwh(total.pv_wh)),
    row("house_wh", "House", formatKwh(total.house_wh)),
    row("import_wh", "Import", formatKwh(total.import_wh)),
    row("export_wh", "Export", formatKwh(total.export_wh)),
    row("charge_wh", "Charge", formatKwh(total.charge_wh)),
    row("discharge_wh", "Discharge", formatKwh(total.discharge_wh)),
    row("self_consumption_pct", "Self-consumption", pct(total.self_consumption_pct)),
    row("autarky_pct", "Autarky", pct(total.autarky_pct)),
  ];
}

/** GET the energy of a device for the given parameters (the hub's zone rules). */
export function fetchEnergy(deviceId, params) {
  return getJSON(`/api/devices/${encodeURIComponent(deviceId)}/energy`, params);
}

/** The URL of a CSV download of the device (same origin: the session cookie goes along). */
export function csvUrl(deviceId, file, params) {
  const url = new URL(`/api/devices/${encodeURIComponent(deviceId)}/${file}`, window.location.origin);
  for (const [key, val] of Object.entries(params)) {
    if (val !== undefined && val !== null) url.searchParams.set(key, String(val));
  }
  return url.pathname + url.search;
}
