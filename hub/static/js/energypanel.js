// The device page's energy panel: bars for a day, a week, a month or a year
// with previous/next/today, the range's totals, where its energy went, and
// CSV downloads of the range. Each step is one GET /api/devices/{id}/energy
// (docs/protocol.md, "Energy over HTTP"); the hub answers in the site's time
// zone, which the panel shows and uses to know what "today" is.

import {
  VIEWS,
  csvUrl,
  drawBars,
  drawFlow,
  energyFlow,
  fetchEnergy,
  parseDate,
  rangeParams,
  stepAnchor,
  todayIn,
  totalRows,
} from "./energy.js";

const REFRESH_MS = 60_000; // a range holding today grows: fetched again each minute

function rangeText(view, anchor) {
  const date = parseDate(anchor);
  const format = (options) => new Intl.DateTimeFormat(undefined, { timeZone: "UTC", ...options }).format(date);
  if (view === "day") return format({ weekday: "short", day: "numeric", month: "short", year: "numeric" });
  if (view === "month") return format({ month: "long", year: "numeric" });
  if (view === "year") return String(date.getUTCFullYear());
  const { start, end } = rangeParams("week", anchor);
  const short = (text) =>
    new Intl.DateTimeFormat(undefined, { timeZone: "UTC", day: "numeric", month: "short" }).format(parseDate(text));
  return `${short(start)} – ${short(end)} ${end.slice(0, 4)}`;
}

export class EnergyPanel {
  /** elements: {section, bars, totals, flow, flowRange, range, zone, prev, next, today, views, energyCsv, readingsCsv, notice} */
  constructor(deviceId, elements) {
    this.deviceId = deviceId;
    this.ui = elements;
    this.view = "day";
    this.anchor = null; // a local date of the site; null: today, as the hub sees it
    this.zone = null;
    this.generation = 0;
    this.loads = 0;
    this.timer = 0;
    this.answer = null;
    elements.prev.addEventListener("click", () => this.step(-1));
    elements.next.addEventListener("click", () => this.step(1));
    elements.today.addEventListener("click", () => {
      this.anchor = this.zone ? todayIn(this.zone) : null;
      this.load();
    });
    for (const button of elements.views) {
      button.addEventListener("click", () => {
        this.view = button.dataset.view;
        this.load();
      });
    }
  }

  step(direction) {
    if (this.anchor === null) return;
    this.anchor = stepAnchor(this.view, this.anchor, direction);
    this.load();
  }

  params() {
    if (this.anchor === null) return { period: VIEWS[this.view].period }; // today in the site's zone
    return rangeParams(this.view, this.anchor);
  }

  async load() {
    const generation = ++this.generation;
    clearTimeout(this.timer);
    const ui = this.ui;
    ui.section.dataset.state = "loading";
    for (const button of ui.views) button.setAttribute("aria-pressed", String(button.dataset.view === this.view));
    let answer;
    try {
      answer = await fetchEnergy(this.deviceId, this.params());
    } catch (err) {
      if (generation !== this.generation) return;
      ui.section.dataset.state = "error";
      ui.notice.hidden = false;
      ui.notice.textContent = `Energy unavailable: ${err.message}`;
      this.timer = setTimeout(() => this.load(), REFRESH_MS);
      return;
    }
    if (generation !== this.generation) return; // a newer range was asked meanwhile
    ui.notice.hidden = true;
    this.answer = answer;
    this.zone = answer.timezone;
    if (this.anchor === null) this.anchor = answer.start.slice(0, 10);
    this.render(answer);
    this.loads += 1;
    ui.section.dataset.state = "ready";
    const today = todayIn(this.zone);
    const next = rangeParams(this.view, stepAnchor(this.view, this.anchor, 1)).start;
    ui.next.disabled = next > today; // nothing is measured in the future
    const { start, end } = this.params();
    const holdsToday = start <= today && (end ?? start) >= today.slice(0, (end ?? start).length);
    if (holdsToday) {
      // Following today: past the site's midnight the range moves on to the new day.
      this.timer = setTimeout(() => {
        this.anchor = todayIn(this.zone);
        this.load();
      }, REFRESH_MS);
    }
  }

  render(answer) {
    const ui = this.ui;
    ui.section.dataset.view = this.view;
    ui.section.dataset.anchor = this.anchor;
    ui.section.dataset.zone = answer.timezone;
    ui.section.dataset.start = answer.start;
    ui.section.dataset.end = answer.end;
    const text = rangeText(this.view, this.anchor);
    ui.range.textContent = text;
    ui.flowRange.textContent = text;
    ui.zone.textContent = answer.timezone;
    drawBars(ui.bars, answer);
    ui.bars.setAttribute("aria-label", `energy per ${answer.period}, ${text}`);
    ui.totals.replaceChildren(...totalRows(answer.total));
    ui.totals.dataset.complete = String(Boolean(answer.total.complete));
    drawFlow(ui.flow, energyFlow(answer.intervals));
    const params = this.params();
    ui.energyCsv.href = csvUrl(this.deviceId, "energy.csv", params);
    const { period, ...span } = params;
    ui.readingsCsv.href = csvUrl(this.deviceId, "readings.csv", span);
  }
}
