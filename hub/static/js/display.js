// How the device page shows a value: one rounding per unit everywhere on the
// page, units spelt as people write them, enumerations by name, and long runs
// of numbered fields (cell 1..16) grouped.

// Units by name suffix (docs/protocol.md: units are in the names); longest first.
const UNITS = [
  ["_kwh", "kWh"],
  ["_wh", "Wh"],
  ["_kw", "kW"],
  ["_var", "var"],
  ["_va", "VA"],
  ["_ah", "Ah"],
  ["_mv", "mV"],
  ["_ma", "mA"],
  ["_pct", "%"],
  ["_hz", "Hz"],
  ["_w", "W"],
  ["_v", "V"],
  ["_a", "A"],
  ["_c", "°C"],
  ["_s", "s"],
];

// Decimal places per unit: 816 W beside 817 W, never beside 816.45 W.
const DECIMALS = { W: 0, kW: 2, Wh: 0, kWh: 1, var: 0, VA: 0, V: 1, mV: 0, A: 2, mA: 0, Ah: 1, Hz: 2, "%": 1, "°C": 1, s: 0 };

const WORDS = {
  ac: "AC",
  dc: "DC",
  pv: "PV",
  soc: "SOC",
  soh: "SOH",
  bms: "BMS",
  mppt: "MPPT",
  l1: "L1",
  l2: "L2",
  l3: "L3",
  avg: "average",
  min: "min",
  max: "max",
  stat: "statistical",
};

// Enumerations a driver reports as numbers (the vendor's documents): name them.
const ENUMS = {
  // EPEver Tracer V2.5, 0x3201 D3-D2.
  charger_charging_status: ["not charging", "float", "boost", "equalization"],
  // EPEver Tracer V2.5, 0x3008.
  charger_charging_mode: ["connect/disconnect", "PWM", "MPPT"],
};

/** `ac_power_w` -> {label: "AC power", unit: "W"}; `bms_full_capacity_ah` -> "Ah". */
export function describeField(name) {
  let stem = name;
  let unit = "";
  for (const [suffix, symbol] of UNITS) {
    if (name.endsWith(suffix) && name.length > suffix.length) {
      stem = name.slice(0, -suffix.length);
      unit = symbol;
      break;
    }
  }
  const words = stem.split("_").map((word) => WORDS[word] ?? word.replace(/^mppt(\d+)$/, "MPPT $1"));
  const label = words.join(" ");
  return { label: label.charAt(0).toUpperCase() + label.slice(1), unit };
}

function decimalsOf(name, unit) {
  if (name === "power_factor") return 2;
  if (name.includes("cell_voltage")) return 3; // cells differ by millivolts
  return DECIMALS[unit] ?? 2;
}

/** A number with fixed decimals, thousands separated, never "-0". */
export function formatFixed(value, decimals) {
  const text = value.toLocaleString("en-US", {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}

/** A number in its unit, rounded the one way this unit always is: "816 W", "3.12 kW". */
export function formatQuantity(value, unit, name = "") {
  let shown = value;
  let symbol = unit;
  let decimals = decimalsOf(name, unit);
  if (unit === "W" && Math.abs(value) >= 1000) [shown, symbol, decimals] = [value / 1000, "kW", 2];
  if (unit === "Wh" && Math.abs(value) >= 10_000) [shown, symbol, decimals] = [value / 1000, "kWh", 1];
  const text = formatFixed(shown, decimals);
  if (!symbol) return text;
  return symbol === "%" ? `${text}%` : `${text} ${symbol}`;
}

/** What a field's value looks like on the page; {text, title} (title: the raw value, if shown otherwise). */
export function displayValue(section, name, value, context = {}) {
  const { unit } = describeField(name);
  const names = ENUMS[name];
  if (names && Number.isInteger(value)) {
    return { text: names[value] ?? `unknown (${value})`, title: `${name} = ${value}` };
  }
  if (section === "grid" && name === "power_factor" && phasesCancel(context.phasePowers)) {
    // The phases' powers cancel out: a total power factor says nothing then.
    return { text: "n/a (phases cancel)", title: `the meter reports ${value}` };
  }
  if (typeof value === "number") return { text: formatQuantity(value, unit, name) };
  if (Array.isArray(value)) {
    const decimals = decimalsOf(name, unit);
    return { text: value.map((v) => formatFixed(v, decimals)).join(" / ") + (unit ? ` ${unit}` : "") };
  }
  return { text: String(value) };
}

/** Phase powers that flow both ways and nearly cancel out in the total. */
export function phasesCancel(phasePowers) {
  if (!Array.isArray(phasePowers) || phasePowers.length < 2) return false;
  const gross = phasePowers.reduce((sum, p) => sum + Math.abs(p), 0);
  const net = Math.abs(phasePowers.reduce((sum, p) => sum + p, 0));
  return gross >= 50 && net < 0.1 * gross;
}

/**
 * Rows grouped for the Extra card: [{key, label, names: [...]}]. Fields named
 * `stem_<n>_unit` with three or more members form one group ("BMS cell voltage
 * 1–16"); the rest group by their first word (the device that reports them).
 */
export function groupExtra(names) {
  const series = new Map();
  const rest = [];
  for (const name of names) {
    const match = /^(.*)_(\d+)(_[a-z]+)$/.exec(name);
    if (match) {
      const key = `${match[1]}_n${match[3]}`;
      if (!series.has(key)) series.set(key, []);
      series.get(key).push(name);
    } else rest.push(name);
  }
  const groups = [];
  const byDevice = new Map();
  for (const [key, members] of series) {
    if (members.length < 3) {
      rest.push(...members);
      continue;
    }
    const numbers = members.map((name) => Number(/_(\d+)_[a-z]+$/.exec(name)[1]));
    const { label } = describeField(key.replace(/_n(_[a-z]+)$/, "$1"));
    groups.push({ key, label: `${label} ${Math.min(...numbers)}–${Math.max(...numbers)}`, names: members });
  }
  for (const name of rest.sort()) {
    const device = name.split("_")[0];
    if (!byDevice.has(device)) byDevice.set(device, []);
    byDevice.get(device).push(name);
  }
  const deviceGroups = [...byDevice].map(([device, members]) => ({
    key: device,
    label: WORDS[device] ?? device.replace(/^mppt(\d+)$/, "MPPT $1"),
    names: members,
  }));
  return [...deviceGroups, ...groups];
}
