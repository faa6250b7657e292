// Hand-written SVG charts: the primary metric per candidate × evaluation (with intervals and the threshold), and
// training / validation loss curves. Every mark carries an aria-label and a <title>, so it can be read and found.

import { h, num, s } from "./dom.js";

export const EVAL_TYPES = ["base", "icl", "customized"];
const EVAL_LABEL = { base: "base", icl: "icl", customized: "customized" };

/** About ``count`` round tick values covering [lo, hi]. */
function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((x) => x >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

function scale(domainLo, domainHi, rangeLo, rangeHi) {
  const span = domainHi - domainLo || 1;
  return (v) => rangeLo + ((v - domainLo) / span) * (rangeHi - rangeLo);
}

function legend(items) {
  return h(
    "ul",
    { class: "legend" },
    items.map(([label, cls]) => h("li", {}, h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }), label)),
  );
}

function yAxis(y, values, left, right, format) {
  return values.map((v) =>
    s(
      "g",
      { class: "tick" },
      s("line", { x1: left, x2: right, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: left - 8, y: y(v), dy: "0.32em", "text-anchor": "end" }, format(v)),
    ),
  );
}

/**
 * The primary metric of every candidate × evaluation as bars with 95% CI error bars and the threshold line.
 * ``report`` is the /report JSON; the recommended evaluation is outlined.
 */
export function scoreChart(report) {
  const metric = report.primary_metric;
  const threshold = report.thresholds?.[metric] ?? null;
  const rec = report.recommendation || {};
  const groups = (report.candidates || []).map((c) => ({
    name: c.model_name,
    bars: EVAL_TYPES.map((type) => c.evaluations.find((e) => e.eval_type === type))
      .filter(Boolean)
      .map((e) => ({ type: e.eval_type, status: e.status, metric: e.metrics?.[metric] })),
  }));
  const computed = groups.flatMap((g) => g.bars).filter((b) => b.metric?.status === "computed");
  const top = Math.max(1, threshold ?? 0, ...computed.map((b) => Math.max(b.metric.value, b.metric.ci_high ?? 0)));

  const width = 760;
  const height = 300;
  const m = { left: 52, right: 112, top: 18, bottom: 58 };
  const y = scale(0, top, height - m.bottom, m.top);
  const plotWidth = width - m.left - m.right;
  const groupWidth = plotWidth / Math.max(1, groups.length);

  const marks = [];
  groups.forEach((group, gi) => {
    const barWidth = Math.min(44, (groupWidth * 0.8) / Math.max(1, group.bars.length));
    const start = m.left + gi * groupWidth + (groupWidth - barWidth * group.bars.length) / 2;
    group.bars.forEach((bar, bi) => {
      const x = start + bi * barWidth + 3;
      const w = barWidth - 6;
      const cx = x + w / 2;
      const who = `${group.name} ${EVAL_LABEL[bar.type]}`;
      const recommended = rec.status === "recommended" && rec.candidate === group.name && rec.eval_type === bar.type;
      if (bar.metric?.status === "computed") {
        const v = bar.metric.value;
        const label = `${who}: ${metric} ${num(v)} (95% CI ${num(bar.metric.ci_low)}–${num(bar.metric.ci_high)}, n=${bar.metric.n})`;
        marks.push(
          s(
            "rect",
            {
              x,
              y: y(v),
              width: w,
              height: Math.max(0, y(0) - y(v)),
              class: `bar bar-${bar.type}${recommended ? " bar-recommended" : ""}`,
              "data-testid": "bar",
              "data-candidate": group.name,
              "data-eval-type": bar.type,
              "data-value": v,
              role: "img",
              "aria-label": label,
            },
            s("title", {}, label),
          ),
        );
        if (bar.metric.ci_low !== null && bar.metric.ci_high !== null) {
          const ciLabel = `${who}: 95% CI ${num(bar.metric.ci_low)}–${num(bar.metric.ci_high)}`;
          const lo = y(bar.metric.ci_low);
          const hi = y(bar.metric.ci_high);
          const cap = Math.min(8, w / 3);
          marks.push(
            s(
              "g",
              { class: "error-bar", "data-testid": "error-bar", role: "img", "aria-label": ciLabel },
              s("title", {}, ciLabel),
              s("line", { x1: cx, x2: cx, y1: lo, y2: hi }),
              s("line", { x1: cx - cap, x2: cx + cap, y1: lo, y2: lo }),
              s("line", { x1: cx - cap, x2: cx + cap, y1: hi, y2: hi }),
            ),
          );
        }
        marks.push(
          s(
            "text",
            { x: cx, y: y(bar.metric.ci_high ?? v) - 6, class: "bar-value", "text-anchor": "middle" },
            num(v, 2),
          ),
        );
      } else {
        const why = bar.metric?.reason || bar.status || "not computed";
        marks.push(
          s(
            "rect",
            {
              x,
              y: y(0) - 4,
              width: w,
              height: 4,
              class: "bar bar-missing",
              "data-testid": "bar-missing",
              role: "img",
              "aria-label": `${who}: ${metric} not available (${why})`,
            },
            s("title", {}, `${who}: ${why}`),
          ),
        );
      }
      marks.push(
        s(
          "text",
          { x: cx, y: height - m.bottom + 16, class: "bar-label", "text-anchor": "middle" },
          bar.type === "customized" ? "LoRA" : bar.type,
        ),
      );
    });
    marks.push(
      s(
        "text",
        {
          x: m.left + (gi + 0.5) * groupWidth,
          y: height - m.bottom + 38,
          class: "group-label",
          "text-anchor": "middle",
        },
        group.name,
      ),
    );
  });

  const thresholdMarks =
    threshold === null
      ? []
      : [
          s(
            "g",
            {
              class: "threshold",
              "data-testid": "threshold-line",
              role: "img",
              "aria-label": `threshold ${metric} ≥ ${num(threshold, 2)}`,
            },
            s("line", { x1: m.left, x2: width - m.right, y1: y(threshold), y2: y(threshold) }),
            s("text", { x: width - m.right + 6, y: y(threshold), dy: "0.32em" }, `threshold ${num(threshold, 2)}`),
          ),
        ];

  const svg = s(
    "svg",
    {
      class: "chart score-chart",
      viewBox: `0 0 ${width} ${height}`,
      role: "group",
      "data-testid": "score-chart",
      "aria-label": `${metric} per candidate and evaluation with 95% confidence intervals`,
    },
    yAxis(y, ticks(0, top), m.left, width - m.right, (v) => num(v, 1)),
    s("line", { x1: m.left, x2: width - m.right, y1: y(0), y2: y(0), class: "axis" }),
    s(
      "text",
      {
        x: 14,
        y: (m.top + height - m.bottom) / 2,
        class: "axis-title",
        transform: `rotate(-90 14 ${(m.top + height - m.bottom) / 2})`,
        "text-anchor": "middle",
      },
      metric,
    ),
    marks,
    thresholdMarks,
  );
  return h(
    "figure",
    { class: "chart-figure" },
    svg,
    legend([
      ["base", "bar-base"],
      ["icl (few-shot)", "bar-icl"],
      ["customized (LoRA)", "bar-customized"],
      ["95% CI", "swatch-ci"],
      ["threshold", "swatch-threshold"],
    ]),
  );
}

function thin(points, most = 600) {
  if (points.length <= most) return points;
  const every = Math.ceil(points.length / most);
  return points.filter((_, i) => i % every === 0 || i === points.length - 1);
}

/** Training and validation loss against the step, for one candidate's customization. */
export function lossChart(name, customization) {
  const train = thin(customization.train_loss || []);
  const val = customization.val_loss || [];
  const all = [...train, ...val];
  const width = 560;
  const height = 220;
  const m = { left: 52, right: 16, top: 14, bottom: 40 };
  const maxStep = Math.max(1, ...all.map((p) => p[0]));
  const maxLoss = Math.max(1e-9, ...all.map((p) => p[1]));
  const yTicks = ticks(0, maxLoss, 4);
  const yTop = Math.max(maxLoss, yTicks[yTicks.length - 1]);
  const x = scale(0, maxStep, m.left, width - m.right);
  const y = scale(0, yTop, height - m.bottom, m.top);
  const path = (points) => points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
  const xTicks = ticks(0, maxStep, 5).filter((v) => Number.isInteger(v));
  return h(
    "figure",
    { class: "chart-figure loss" },
    h("figcaption", {}, name),
    s(
      "svg",
      {
        class: "chart loss-chart",
        viewBox: `0 0 ${width} ${height}`,
        role: "img",
        "data-testid": "loss-chart",
        "aria-label":
          `${name}: training loss over ${maxStep} steps` + (val.length ? `, ${val.length} validation points` : ""),
      },
      yAxis(y, yTicks, m.left, width - m.right, (v) => num(v, yTop < 0.1 ? 3 : 2)),
      xTicks.map((v) =>
        s("text", { x: x(v), y: height - m.bottom + 16, "text-anchor": "middle", class: "tick-label" }, String(v)),
      ),
      s("line", { x1: m.left, x2: width - m.right, y1: y(0), y2: y(0), class: "axis" }),
      s(
        "text",
        { x: (m.left + width - m.right) / 2, y: height - 4, "text-anchor": "middle", class: "axis-title" },
        "step",
      ),
      train.length ? s("path", { d: path(train), class: "line-train", "data-testid": "train-loss" }) : null,
      val.length > 1 ? s("path", { d: path(val), class: "line-val" }) : null,
      val.map((p) =>
        s(
          "circle",
          { cx: x(p[0]), cy: y(p[1]), r: 3.5, class: "point-val", "data-testid": "val-loss" },
          s("title", {}, `validation loss ${num(p[1])} at step ${p[0]}`),
        ),
      ),
    ),
    legend([
      ["training loss", "swatch-train"],
      ["validation loss", "swatch-val"],
    ]),
  );
}
