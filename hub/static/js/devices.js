// A site with several devices per role (docs/protocol.md, "Several devices per role"):
// the reading's sections are the site's totals, and `devices` holds each device's own
// values. This draws one small table per role: a row per device, then the site's total.

import { el } from "./common.js";
import { displayValue } from "./display.js";

// Per role, the columns worth comparing device by device: [section, field, heading].
const COLUMNS = {
  inverter: [
    ["inverter", "ac_power_w", "AC power"],
    ["solar", "pv_power_w", "PV power"],
    ["inverter", "energy_total_wh", "Energy"],
    ["inverter", "temperature_c", "Temp."],
    ["inverter", "state", "State"],
  ],
  grid: [
    ["grid", "power_w", "Power"],
    ["grid", "voltage_v", "Voltage"],
    ["grid", "current_a", "Current"],
    ["grid", "import_energy_wh", "Import"],
    ["grid", "export_energy_wh", "Export"],
  ],
  solar: [
    ["solar", "pv_power_w", "PV power"],
    ["solar", "pv_voltage_v", "PV voltage"],
    ["solar", "energy_today_wh", "Today"],
    ["solar", "energy_total_wh", "Energy"],
  ],
  battery: [
    ["battery", "power_w", "Power"],
    ["battery", "soc_pct", "SOC"],
    ["battery", "soh_pct", "SOH"],
    ["battery", "voltage_v", "Voltage"],
    ["battery", "cell_voltage_min_v", "Cell min"],
    ["battery", "cell_voltage_max_v", "Cell max"],
    ["battery", "state", "State"],
  ],
};
const ROLES = Object.keys(COLUMNS);
// Names, roles and sections come from the device: only plain objects are read.
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

function cell(section, field, values) {
  const value = isObject(values) ? values[field] : undefined;
  if (value === undefined || value === null) return el("td", { class: "missing", text: "—" });
  const shown = displayValue(section, field, value);
  return el("td", { "data-field": `${section}.${field}`, "data-value": JSON.stringify(value), text: shown.text });
}

/** The tables of a reading's `devices`; an empty list when it has none. */
export function deviceTables(reading) {
  const devices = reading?.devices;
  if (!isObject(devices)) return [];
  const tables = [];
  for (const role of ROLES) {
    const members = Object.entries(devices).filter(([, device]) => isObject(device) && device.role === role);
    if (!members.length) continue;
    // Only the columns some device of the role fills.
    const columns = COLUMNS[role].filter(([section, field]) =>
      members.some(([, device]) => isObject(device[section]) && device[section][field] !== undefined),
    );
    const rows = members.map(([name, device]) => {
      const counted = device.total !== false;
      return el(
        "tr",
        { "data-device": name, "data-total": String(counted) },
        el("th", { scope: "row", text: name }, counted ? null : el("span", { class: "sub-meter", text: "sub-meter" })),
        ...columns.map(([section, field]) => cell(section, field, device[section])),
      );
    });
    const total = el(
      "tr",
      { class: "site-total", "data-device": "" },
      el("th", { scope: "row", text: "Site total" }),
      ...columns.map(([section, field]) => cell(section, field, reading[section])),
    );
    tables.push(
      el(
        "article",
        { class: "panel devices-card", "data-role": role },
        el("h3", { text: role }),
        el(
          "table",
          { class: "devices-table" },
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              el("th", { scope: "col", text: "Device" }),
              ...columns.map(([, , heading]) => el("th", { scope: "col", text: heading })),
            ),
          ),
          el("tbody", {}, ...rows, total),
        ),
      ),
    );
  }
  return tables;
}
