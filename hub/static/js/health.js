// How a site is doing, from what the hub says of it: its agent's socket
// (`online`), its agent's health frame (which devices are failing, the sampling
// interval) and the age of its newest reading (docs/protocol.md, "Devices over
// HTTP"). "online" alone only means the agent's socket is up.

import { formatAgo, formatClock, parseTs } from "./common.js";

// A site (or a section of its values) is stale when nothing newer arrived for
// this many sampling intervals.
export const STALE_INTERVALS = 3;
// Before the agent's first health frame the interval is unknown: the agent's default.
export const DEFAULT_INTERVAL_S = 1;

export function staleAfterMs(health) {
  return STALE_INTERVALS * 1000 * (health?.interval_s ?? DEFAULT_INTERVAL_S);
}

/**
 * {condition, text}: condition is "unknown" | "offline" | "failing" | "stale" | "ok".
 * lastSeenMs: when the newest reading arrived (or was taken), in ms since the epoch.
 */
export function siteCondition({ online, health, lastSeenMs, now = Date.now() }) {
  if (online === null || online === undefined) return { condition: "unknown", text: "unknown" };
  if (!online) return { condition: "offline", text: "offline" };
  const failing = health?.failing ?? [];
  if (failing.length) return { condition: "failing", text: "failing" };
  if (lastSeenMs === null || lastSeenMs === undefined || now - lastSeenMs > staleAfterMs(health)) {
    return { condition: "stale", text: "no fresh data" };
  }
  return { condition: "ok", text: "online" };
}

/** "inverter, meter not read since 12:30:01"; "" when none fails (errors: see deviceLine). */
export function failingText(health) {
  const failing = (health?.devices ?? []).filter((device) => device.state === "failing");
  if (!failing.length) return "";
  const names = failing.map((device) => device.name).join(", ");
  const since = Math.min(...failing.map((device) => parseTs(device.since ?? "")).filter(Number.isFinite));
  const when = Number.isFinite(since) ? ` since ${clockTime(since)}` : "";
  return `${names} not read${when}`;
}

/** The time of day for today's instants, the date and time otherwise. */
export function clockTime(ms) {
  const when = new Date(ms);
  return when.toDateString() === new Date().toDateString() ? when.toLocaleTimeString() : formatClock(ms);
}

/** What a device says it is (docs/protocol.md, "Device health": identity):
 * "Fronius Symo GEN24 10.0 Plus, SN 28123456, firmware 1.34.6-1"; "" when unknown. */
export function identityText(identity) {
  if (!identity) return "";
  const maker = [identity.manufacturer, identity.model].filter(Boolean).join(" ");
  const serial = identity.serial_number ? `SN ${identity.serial_number}` : "";
  const firmware = identity.firmware_version ? `firmware ${identity.firmware_version}` : "";
  return [maker, serial, firmware].filter(Boolean).join(", ");
}

/** One line per device: "inverter · failing since 12:30:01 · last good read 42 s ago",
 * then what it says it is. */
export function deviceLine(device, now = Date.now()) {
  const parts = [device.name];
  const since = device.since ? ` since ${clockTime(parseTs(device.since))}` : "";
  parts.push(device.state === "ok" ? `read${since}` : `${device.state}${since}`);
  if (device.state !== "ok" && device.last_ok) {
    parts.push(`last good read ${formatAgo(parseTs(device.last_ok), now)}`);
  }
  if (device.state === "failing" && device.error) parts.push(device.error);
  const identity = identityText(device.identity);
  if (identity) parts.push(identity);
  return parts.join(" · ");
}

/** The sections of a reading each failing device fills (a device's role names its section). */
export function failingSections(health) {
  return new Set(
    (health?.devices ?? [])
      .filter((device) => device.state === "failing" && device.role)
      .map((device) => device.role),
  );
}
