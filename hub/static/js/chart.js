// A small rolling line chart on a canvas: a few series over a time window that
// scrolls with the clock. Points are kept sorted and unique by time, so a
// back-filled point and a live one for the same instant are drawn once.

import { formatPower } from "./common.js";

// A line is broken where two neighbours are further apart than this: an outage
// shows as a gap, not as a straight line across it.
// Longer ranges, with bigger buckets, join further (see `maxJoinMs`).
const MAX_JOIN_MS = 150_000;
const DAY_MINUTES = 1440;

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 2.5, 5, 10]) {
    if (factor * power >= raw) return factor * power;
  }
  return 10 * power;
}

export class PowerChart {
  /**
   * series: [{key, label, color}]; each point is {ts, [key]: watts | null}.
   */
  constructor(canvas, { windowMs, series, maxJoinMs = MAX_JOIN_MS }) {
    this.canvas = canvas;
    this.windowMs = windowMs;
    this.maxJoinMs = maxJoinMs;
    this.series = series;
    this.points = [];
    this.frame = 0;
    this.hoverX = null; // CSS pixels from the canvas' left edge, while a pointer is over it
    canvas.addEventListener("pointermove", (event) => {
      this.hoverX = event.offsetX;
      this.requestDraw();
    });
    canvas.addEventListener("pointerleave", () => {
      this.hoverX = null;
      this.requestDraw();
    });
    new ResizeObserver(() => this.requestDraw()).observe(canvas);
    setInterval(() => this.requestDraw(), 1000); // the window rolls with the clock
  }

  /** Show another span (a range picked): the points of the old one are dropped. */
  setWindow(windowMs, maxJoinMs) {
    this.windowMs = windowMs;
    this.maxJoinMs = maxJoinMs;
    this.points = [];
    this.requestDraw();
  }

  get newestTs() {
    return this.points.length ? this.points[this.points.length - 1].ts : null;
  }

  /** Insert a point in time order; false when one with the same ts is already there. */
  insert(point) {
    const points = this.points;
    let low = 0;
    let high = points.length;
    if (high && points[high - 1].ts < point.ts) {
      low = high; // the usual case: a live point after every other
    } else {
      while (low < high) {
        const mid = (low + high) >> 1;
        if (points[mid].ts < point.ts) low = mid + 1;
        else high = mid;
      }
      if (low < points.length && points[low].ts === point.ts) return false;
    }
    points.splice(low, 0, point);
    this.prune();
    this.requestDraw();
    return true;
  }

  prune() {
    const newest = this.newestTs;
    if (newest === null) return;
    const oldest = Math.max(newest, Date.now()) - this.windowMs - this.maxJoinMs;
    let drop = 0;
    while (drop < this.points.length && this.points[drop].ts < oldest) drop += 1;
    if (drop) this.points.splice(0, drop);
  }

  requestDraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    const ink = style.getPropertyValue("--chart-ink").trim() || "#667";
    const rule = style.getPropertyValue("--chart-rule").trim() || "#ddd";

    const end = Math.max(Date.now(), this.newestTs ?? 0);
    const start = end - this.windowMs;
    const visible = this.points.filter((p) => p.ts >= start - this.maxJoinMs);

    let low = 0;
    let high = 0;
    for (const point of visible) {
      for (const { key } of this.series) {
        const value = point[key];
        if (value === null || value === undefined) continue;
        low = Math.min(low, value);
        high = Math.max(high, value);
      }
    }
    if (high - low < 200) {
      high = Math.max(high, 100);
      low = Math.min(low, -100);
    }
    const step = niceStep(high - low, 4);
    low = Math.floor(low / step) * step;
    high = Math.ceil(high / step) * step;

    const left = 64;
    const right = 12;
    const top = 10;
    const bottom = 26;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const x = (ts) => left + ((ts - start) / (end - start)) * plotWidth;
    const y = (value) => top + ((high - value) / (high - low)) * plotHeight;

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.fillStyle = ink;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let value = low; value <= high + step / 2; value += step) {
      ctx.strokeStyle = Math.abs(value) < step / 2 ? ink : rule;
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y(value)) + 0.5);
      ctx.lineTo(width - right, Math.round(y(value)) + 0.5);
      ctx.stroke();
      ctx.fillText(formatPower(Math.abs(value) < step / 2 ? 0 : value), left - 6, y(value));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const most = Math.max(2, Math.floor(plotWidth / 70));
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720, DAY_MINUTES];
    const minutes = steps.find((m) => this.windowMs / (m * 60_000) <= most) ?? 2 * DAY_MINUTES;
    const tick = minutes * 60_000;
    // Ticks on this browser's wall clock (whole hours, midnights), not on UTC's.
    const offset = (ts) => -new Date(ts).getTimezoneOffset() * 60_000;
    const first = Math.ceil((start + offset(start)) / tick) * tick - offset(start);
    for (let ts = first; ts <= end; ts += tick) {
      const label =
        minutes >= DAY_MINUTES
          ? new Date(ts).toLocaleDateString([], { weekday: "short", day: "numeric" })
          : new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      const half = ctx.measureText(label).width / 2;
      if (x(ts) - half < left - 20 || x(ts) + half > width - 2) continue; // would be cut off
      ctx.fillText(label, x(ts), height - bottom + 6);
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, plotWidth, plotHeight);
    ctx.clip();
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    for (const { key, color } of this.series) {
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.beginPath();
      let previous = null;
      const alone = []; // points joined to neither neighbour: a line would not show them
      visible.forEach((point, index) => {
        const value = point[key];
        if (value === null || value === undefined) {
          previous = null;
          return;
        }
        const px = x(point.ts);
        const py = y(value);
        const joinedBefore = previous !== null && point.ts - previous <= this.maxJoinMs;
        if (joinedBefore) ctx.lineTo(px, py);
        else ctx.moveTo(px, py);
        const next = visible[index + 1];
        const joinedAfter =
          next !== undefined && next[key] !== null && next[key] !== undefined && next.ts - point.ts <= this.maxJoinMs;
        if (!joinedBefore && !joinedAfter) alone.push([px, py]);
        previous = point.ts;
      });
      ctx.stroke();
      for (const [px, py] of alone) {
        ctx.beginPath();
        ctx.arc(px, py, 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    ctx.restore();
    if (this.hoverX !== null) this.drawReadout(ctx, visible, { x, start, end, left, top, plotWidth, plotHeight, ink });
  }
  /** The values of the point nearest the pointer, beside a vertical rule. */
  drawReadout(ctx, visible, { x, start, end, left, top, plotWidth, plotHeight, ink }) {
    if (!visible.length || this.hoverX < left || this.hoverX > left + plotWidth) return;
    const ts = start + ((this.hoverX - left) / plotWidth) * (end - start);
    let nearest = visible[0];
    for (const point of visible) {
      if (Math.abs(point.ts - ts) < Math.abs(nearest.ts - ts)) nearest = point;
    }
    const px = x(nearest.ts);
    ctx.strokeStyle = ink;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(Math.round(px) + 0.5, top);
    ctx.lineTo(Math.round(px) + 0.5, top + plotHeight);
    ctx.stroke();
    const lines = [
      [null, this.windowMs > 86_400_000 ? new Date(nearest.ts).toLocaleString() : new Date(nearest.ts).toLocaleTimeString()],
      ...this.series.map(({ label, key, color }) => [color, `${label} ${formatPower(nearest[key])}`]),
    ];
    ctx.font = "12px system-ui, sans-serif";
    const boxWidth = 12 + Math.max(...lines.map(([, text]) => ctx.measureText(text).width)) + 14;
    const boxHeight = 8 + lines.length * 17;
    const boxX = px + 10 + boxWidth > left + plotWidth ? px - 10 - boxWidth : px + 10;
    ctx.fillStyle = getComputedStyle(this.canvas).getPropertyValue("--chart-box").trim() || "#fff";
    ctx.strokeStyle = ink;
    ctx.beginPath();
    ctx.rect(boxX, top + 4, boxWidth, boxHeight);
    ctx.fill();
    ctx.stroke();
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    lines.forEach(([color, text], row) => {
      const y = top + 9 + row * 17;
      if (color) {
        ctx.fillStyle = color;
        ctx.fillRect(boxX + 8, y + 5, 8, 3);
      }
      ctx.fillStyle = ink;
      ctx.fillText(text, boxX + (color ? 22 : 8), y);
    });
  }
}
