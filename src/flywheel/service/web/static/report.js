// The sections of a run's report (the JSON of GET /api/jobs/{id}/report): recommendation, scores, training,
// dataset and notes. Pure functions of the report: each returns nodes (or null when there is nothing to show).

import { lossChart, scoreChart } from "./charts.js";
import { DASH, badge, costText, count, h, isActive, num, pct, section } from "./dom.js";

function fact(label, value, testid) {
  return h("div", { class: "fact" }, h("dt", {}, label), h("dd", testid ? { "data-testid": testid } : {}, value));
}

export function recommendationCard(report) {
  const rec = report.recommendation || {};
  const running = isActive(report.status);
  const status = rec.status || "pending";
  const title = {
    recommended: `Recommended: ${rec.candidate} (${rec.eval_type})`,
    no_candidate: "No candidate qualifies",
    pending: "Pending: no recommendation yet",
  }[status];
  const pick = status === "recommended" ? rec : rec.near_miss;
  const metric = rec.metric || report.primary_metric;
  return h(
    "section",
    { class: `card recommendation rec-${status}`, "data-testid": "recommendation", "data-status": status },
    h("h2", {}, title || status),
    h("p", { class: "rec-message", "data-testid": "recommendation-message" }, rec.message || ""),
    running && status !== "pending"
      ? h("p", { class: "small muted" }, "The run is still going: this may change as more evaluations finish.")
      : null,
    pick
      ? h(
          "dl",
          { class: "facts" },
          status !== "recommended" ? fact("closest", `${pick.candidate} (${pick.eval_type})`) : null,
          fact(`${metric} [95% CI]`, `${num(pick.score)} [${num(pick.ci_low)}, ${num(pick.ci_high)}]`),
          fact(
            "threshold",
            rec.threshold === null || rec.threshold === undefined ? DASH : `≥ ${num(rec.threshold, 2)} (lower bound)`,
          ),
          fact("samples", count(pick.n)),
          fact(`cost / 1M requests`, costText({ value: pick.cost_per_1m_requests, unit: report.cost_model?.unit })),
          fact("saving vs teacher", pct(pick.saving_pct), "recommendation-saving"),
        )
      : null,
    rec.advice?.length
      ? h(
          "div",
          { class: "advice" },
          h("h3", {}, "What would help"),
          h(
            "ul",
            {},
            rec.advice.map((a) => h("li", {}, a)),
          ),
        )
      : null,
    rec.next_step ? h("div", { class: "next-step" }, h("h3", {}, "Next step"), h("code", {}, rec.next_step)) : null,
    h(
      "p",
      { class: "never-deploys", "data-testid": "never-deploys" },
      "flywheel never deploys a model. Review the evidence below, then promote the candidate yourself.",
    ),
  );
}

function metricCell(metric, primary) {
  if (!metric || metric.status !== "computed") {
    return h("td", { class: "num muted", title: metric?.reason || null }, DASH);
  }
  return h(
    "td",
    { class: `num nowrap${primary ? " primary" : ""}` },
    h("div", {}, num(metric.value)),
    metric.ci_low !== null && metric.ci_high !== null
      ? h("div", { class: "ci" }, `[${num(metric.ci_low)}, ${num(metric.ci_high)}]`)
      : null,
  );
}

/** "a / b unit", or a dash when neither was measured. */
function pair(a, b, digitsA, digitsB, unit = "") {
  if ((a === null || a === undefined) && (b === null || b === undefined)) return DASH;
  return `${num(a, digitsA)} / ${num(b, digitsB)}${unit}`;
}

function verdictCell(e) {
  if (e.qualifies) return h("td", { class: "verdict qualifies" }, "✓ qualifies");
  return h("td", { class: "verdict shortfall" }, (e.shortfalls || []).join("; ") || DASH);
}

function scoresTable(report) {
  const primary = report.primary_metric;
  const names = new Set();
  for (const c of report.candidates)
    for (const e of c.evaluations) for (const k of Object.keys(e.metrics || {})) names.add(k);
  const metrics = [primary, ...[...names].filter((n) => n !== primary).sort()].filter((n) => names.has(n));
  const unit = report.cost_model?.unit || "";
  const usage = (e, key) => e.usage?.[key]?.value;
  const heads = [
    ["Candidate"],
    ["Eval"],
    ["n", "num"],
    ...metrics.map((m) => [m, "num"]),
    ["Latency p50 / p95", "num"],
    ["Tokens in / out", "num"],
    [`Cost / 1M req`, "num"],
    ["Saving", "num"],
    ["Verdict"],
  ];
  const rows = report.candidates.flatMap((c) =>
    c.evaluations.map((e) =>
      h(
        "tr",
        { "data-testid": "score-row", "data-candidate": c.model_name, "data-eval-type": e.eval_type },
        h("td", { class: "candidate-name" }, c.model_name),
        h("td", { class: "nowrap" }, e.eval_type, e.status !== "completed" ? [" ", badge(e.status)] : null),
        h("td", { class: "num" }, count(e.n)),
        metrics.map((name) => metricCell(e.metrics?.[name], name === primary)),
        h("td", { class: "num nowrap" }, pair(usage(e, "latency_p50_s"), usage(e, "latency_p95_s"), 2, 2, " s")),
        h(
          "td",
          { class: "num nowrap" },
          pair(usage(e, "prompt_tokens_mean"), usage(e, "completion_tokens_mean"), 0, 1),
        ),
        h("td", { class: "num nowrap", title: e.cost?.reason || null }, costText(e.cost)),
        h("td", { class: "num" }, pct(e.saving_pct)),
        verdictCell(e),
      ),
    ),
  );
  const teacher = report.teacher || {};
  const teacherRow = h(
    "tr",
    { class: "teacher-row", "data-testid": "teacher-row" },
    h("td", {}, teacher.model || "teacher", h("div", { class: "muted small" }, "teacher")),
    h("td", {}, "logged"),
    h("td", { class: "num" }, count(teacher.n)),
    metrics.map(() => h("td", { class: "num muted" }, "reference")),
    h("td", { class: "num" }, DASH),
    h("td", { class: "num nowrap" }, pair(teacher.prompt_tokens_mean, teacher.completion_tokens_mean, 0, 1)),
    h("td", { class: "num nowrap" }, costText(teacher.cost)),
    h("td", {}, ""),
    h("td", {}, ""),
  );
  const formula = report.cost_model?.formulas?.[report.cost_model?.basis] || teacher.cost?.formula;
  return [
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "scores", "data-testid": "scores-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            heads.map(([t, cls]) => h("th", { scope: "col", class: cls || null }, t)),
          ),
        ),
        h("tbody", {}, rows, teacherRow),
      ),
    ),
    h(
      "p",
      { class: "muted small" },
      `Scores with 95% confidence intervals; a candidate qualifies when the lower bound clears every threshold. Cost in ${unit} per 1M requests`,
      formula ? ` (${formula}).` : ".",
    ),
  ];
}

export function trainingCard(report) {
  const trained = report.candidates.filter((c) => c.customization);
  if (!trained.length) return null;
  return section(
    "Training (LoRA)",
    { "data-testid": "training" },
    h(
      "div",
      { class: "loss-grid" },
      trained.map((c) => {
        const t = c.customization;
        const last = t.train_loss?.length ? t.train_loss[t.train_loss.length - 1][1] : null;
        return h(
          "div",
          { class: "loss-item" },
          t.train_loss?.length
            ? lossChart(c.model_name, t)
            : h("p", { class: "muted" }, `${c.model_name}: no loss recorded${isActive(t.status) ? " yet" : ""}.`),
          h(
            "p",
            { class: "small muted" },
            badge(t.status),
            ` ${count(t.steps_completed)} steps · final training loss ${num(last)} · best validation loss ${num(t.best_val_loss)}`,
            t.stopped_early ? " · stopped early" : "",
          ),
          t.error ? h("p", { class: "error" }, t.error) : null,
        );
      }),
    ),
  );
}

const COUNT_LABELS = {
  total: "logged records",
  valid_format: "valid format",
  after_quality_filter: "pass the workload filter",
  rejected_total: "rejected",
  deduplicated: "exact duplicates",
  near_duplicates: "near duplicates",
  beyond_limit: "beyond the record limit",
  selected: "selected",
};
const REMOVALS = new Set(["rejected_total", "deduplicated", "near_duplicates", "beyond_limit"]);

export function datasetCard(stats) {
  if (!stats || !stats.counts) return null;
  const counts = stats.counts;
  const total = Math.max(1, counts.total || 0);
  const funnel = h(
    "table",
    { class: "funnel", "data-testid": "curation-counts" },
    h(
      "tbody",
      {},
      Object.entries(counts).map(([key, value]) => {
        const removal = REMOVALS.has(key);
        const fillEl = h("div", { class: `hbar${removal ? " hbar-removed" : ""}` });
        fillEl.style.width = `${(100 * (value || 0)) / total}%`;
        return h(
          "tr",
          { class: removal ? "removal" : "" },
          h("th", { scope: "row" }, removal ? `− ${COUNT_LABELS[key] || key}` : COUNT_LABELS[key] || key),
          h("td", { class: "num" }, count(value)),
          h("td", { class: "hbar-cell" }, fillEl),
        );
      }),
    ),
  );
  const rejected = Object.entries(stats.rejected || {}).sort((a, b) => b[1] - a[1]);
  const splits = stats.splits || {};
  const splitNames = Object.keys(splits);
  const classes = [...new Set(splitNames.flatMap((name) => Object.keys(splits[name]?.classes || {})))].sort();
  const splitCount = (name) => (typeof splits[name] === "object" ? splits[name].count : splits[name]);
  const splitTable = h(
    "table",
    { class: "splits", "data-testid": "split-classes" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, classes.length ? "Class" : ""),
        splitNames.map((n) => h("th", { scope: "col", class: "num" }, n)),
      ),
    ),
    h(
      "tbody",
      {},
      classes.map((label) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, label),
          splitNames.map((n) => h("td", { class: "num" }, count(splits[n]?.classes?.[label] ?? 0))),
        ),
      ),
      h(
        "tr",
        { class: "total-row" },
        h("th", { scope: "row" }, "total"),
        splitNames.map((n) => h("td", { class: "num" }, count(splitCount(n)))),
      ),
    ),
  );
  const icl = stats.icl;
  return section(
    "Dataset",
    { "data-testid": "dataset" },
    h(
      "div",
      { class: "dataset-grid" },
      h("div", {}, h("h3", {}, "Curation"), funnel),
      h("div", {}, h("h3", {}, "Splits by class"), splitTable),
      h(
        "div",
        {},
        h("h3", {}, "Rejection reasons"),
        rejected.length
          ? h(
              "table",
              { class: "rejections", "data-testid": "rejections" },
              h(
                "tbody",
                {},
                rejected.map(([reason, n]) => h("tr", {}, h("td", {}, reason), h("td", { class: "num" }, count(n)))),
              ),
            )
          : h("p", { class: "muted" }, "No record was rejected."),
        icl
          ? h(
              "p",
              { class: "small muted" },
              `Few-shot (icl): ${num(icl.mean_examples, 1)} examples per evaluation record, chosen by ${icl.selection}.`,
            )
          : null,
        stats.leakage
          ? h(
              "p",
              { class: "small muted" },
              `Leakage check: ${count(stats.leakage.train_or_val_records_sharing_eval_user_content)} training/validation records share an evaluation prompt.`,
            )
          : null,
      ),
    ),
  );
}

export function notesCard(report) {
  if (!report.notes?.length) return null;
  return section(
    "Notes",
    {},
    h(
      "ul",
      { class: "notes" },
      report.notes.map((n) => h("li", {}, n)),
    ),
  );
}

/** The primary metric chart and the table of every metric, cost and verdict; null before any candidate. */
export function scoresCard(report) {
  if (!report.candidates.length) return null;
  return section(
    `Scores · ${report.primary_metric}`,
    { "data-testid": "scores" },
    scoreChart(report),
    scoresTable(report),
  );
}
