// Building DOM and SVG nodes, and formatting numbers for display.
//
// API data is user log content, so text only ever enters the page as text nodes (or attribute values set with
// setAttribute): no string from the API, or anywhere else in the dashboard, is ever parsed as HTML.

const SVG_NS = "http://www.w3.org/2000/svg"; // an XML namespace name, not a resource that is fetched

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) {
      if (typeof value !== "function") throw new TypeError(`${key} must be a function`);
      el.addEventListener(key.slice(2), value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("td", {class: "num"}, "0.93"). Attributes named on* take listener functions. */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, like h(). */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace every child of ``el`` with ``children``. */
export function replace(el, ...children) {
  el.replaceChildren();
  return fill(el, {}, children);
}

export const DASH = "—";

/** A number with ``digits`` decimals, or a dash. */
export function num(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? DASH : Number(value).toFixed(digits);
}

/** A large number with thousands separators. */
export function count(value) {
  return value === null || value === undefined ? DASH : Number(value).toLocaleString("en-US");
}

/** A percentage (0–100 in, "12.3%" out). */
export function pct(value, digits = 1) {
  return value === null || value === undefined ? DASH : `${Number(value).toFixed(digits)}%`;
}

/** A cost ``{value, unit}`` per 1M requests. */
export function costText(cost) {
  if (!cost || cost.value === null || cost.value === undefined) return DASH;
  const value = Number(cost.value);
  const digits = value >= 100 ? 0 : value >= 1 ? 1 : 3;
  const amount = value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return cost.unit === "USD" ? `$${amount}` : `${amount} ${cost.unit || ""}`.trim();
}

function parseTime(iso) {
  if (!iso) return null;
  // The API writes naive UTC timestamps.
  const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A timestamp in the browser's time zone, to the minute. */
export function when(iso) {
  const date = parseTime(iso);
  if (!date) return DASH;
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(
    date.getMinutes(),
  )}`;
}

/** The time between two timestamps ("1 min 04 s"); up to now while ``end`` is missing. */
export function duration(startIso, endIso) {
  const start = parseTime(startIso);
  if (!start) return DASH;
  const end = parseTime(endIso) || new Date();
  const seconds = Math.max(0, (end - start) / 1000);
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** A coloured pill for a job, step or evaluation status. */
export function badge(status) {
  const known = ["pending", "running", "completed", "failed", "cancelled", "recommended", "no_candidate"];
  const kind = known.includes(status) ? status : "other";
  return h("span", { class: `badge badge-${kind}` }, String(status || "unknown").replace("_", " "));
}

/** Whether a job in ``status`` may still change. */
export function isActive(status) {
  return status === "pending" || status === "running";
}

/** Wait ``ms`` milliseconds, or reject early when ``signal`` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/** A titled section card. */
export function section(title, attrs, ...children) {
  return h("section", { class: "card", ...attrs }, title ? h("h2", {}, title) : null, ...children);
}
