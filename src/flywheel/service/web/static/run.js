// One run: its status and live progress, the report's sections (report.js) and the samples (samples.js).
// While the run is pending or running the page polls the API every second and redraws; then it stops.

import { api } from "./api.js";
import { DASH, badge, count, duration, h, isActive, pct, replace, section, sleep, when } from "./dom.js";
import { datasetCard, notesCard, recommendationCard, scoresCard, trainingCard } from "./report.js";
import { samplesExplorer } from "./samples.js";

const POLL_MS = 1000;

function header(detail, report) {
  return [
    h(
      "div",
      { class: "page-head" },
      h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Runs"), " / ", h("span", { class: "mono" }, detail.id)),
      h(
        "h1",
        {},
        `${detail.workload_id} · ${detail.client_id} `,
        h("span", { "data-testid": "run-status" }, badge(detail.status)),
      ),
      h(
        "p",
        { class: "meta" },
        h("span", {}, "workload type ", h("strong", {}, report.workload_type || DASH)),
        h("span", {}, "started ", h("strong", {}, when(detail.started_at))),
        h(
          "span",
          {},
          isActive(detail.status) ? "running for " : "took ",
          h("strong", {}, duration(detail.started_at, detail.finished_at)),
        ),
        h("span", {}, "records ", h("strong", {}, count(detail.num_records))),
      ),
    ),
    detail.error ? h("div", { class: "callout callout-failed", role: "alert" }, detail.error) : null,
  ];
}

function bar(percent, label) {
  const value = Math.max(0, Math.min(100, percent || 0));
  const fillEl = h("div", { class: "bar-fill" });
  fillEl.style.width = `${value}%`;
  return h(
    "div",
    {
      class: "bar-track",
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": value.toFixed(0),
      "aria-label": label,
    },
    fillEl,
  );
}

function stepRows(steps) {
  return h(
    "ol",
    { class: "steps" },
    steps.map((step) =>
      h(
        "li",
        { class: `step step-${step.status}`, "data-testid": "step", "data-step": step.name },
        h("span", { class: "step-name mono" }, step.name),
        badge(step.status),
        bar(step.status === "completed" ? 100 : step.progress, `${step.name} progress`),
        h("span", { class: "num small" }, pct(step.status === "completed" ? 100 : step.progress || 0, 0)),
        h("span", { class: "num small muted" }, step.started_at ? duration(step.started_at, step.finished_at) : ""),
        step.error ? h("span", { class: "step-error" }, step.error) : null,
      ),
    ),
  );
}

function progressCard(detail, report) {
  const progress = report.progress || {};
  const percent = progress.percent || 0;
  return section(
    "Progress",
    { "data-testid": "progress", class: "card progress-card" },
    h(
      "div",
      { class: "progress-head" },
      h(
        "span",
        { class: "big-number", "data-testid": "progress-percent", "data-percent": percent.toFixed(1) },
        pct(percent, 0),
      ),
      h(
        "span",
        { class: "muted" },
        `${progress.steps_done ?? 0} of ${progress.steps_total ?? 0} steps done`,
        progress.running?.length
          ? ` · running ${progress.running.join(", ")}`
          : detail.status === "pending"
            ? " · waiting for a worker"
            : "",
      ),
    ),
    bar(percent, "overall progress"),
    stepRows(detail.steps || []),
  );
}

function draw(view, detail, report) {
  const active = isActive(report.status) || isActive(detail.status);
  replace(view.head, header(detail, report));
  replace(view.progress, active ? progressCard(detail, report) : null);
  replace(view.recommendation, recommendationCard(report));
  replace(view.scores, scoresCard(report));
  replace(view.training, trainingCard(report));
  replace(view.dataset, datasetCard(report.dataset_stats));
  replace(view.notes, notesCard(report));
  replace(
    view.steps,
    active || !detail.steps?.length
      ? null
      : h(
          "details",
          { class: "card" },
          h("summary", {}, `Pipeline steps (${detail.steps.length})`),
          stepRows(detail.steps),
        ),
  );
  return active;
}

/** Render run ``jobId``; polls every second while it is pending or running, then draws the final report. */
export async function renderRun(root, jobId, signal) {
  const view = {};
  for (const key of [
    "head",
    "progress",
    "recommendation",
    "scores",
    "training",
    "dataset",
    "notes",
    "samples",
    "steps",
  ]) {
    view[key] = h("div", { class: `slot slot-${key}` });
  }
  replace(view.head, h("p", { class: "muted" }, "Loading run…"));
  replace(root, Object.values(view));
  const path = `api/jobs/${encodeURIComponent(jobId)}`;
  let samples = null;
  let watched = false;
  for (;;) {
    const [detail, report] = await Promise.all([api(path, {}, signal), api(`${path}/report`, {}, signal)]);
    const active = draw(view, detail, report);
    if (!samples) {
      const card = h("section", { class: "card", "data-testid": "samples" });
      replace(view.samples, card);
      samples = samplesExplorer(card, jobId, report, signal);
    } else if (!active && watched) {
      samples.update(report);
    }
    if (!active) return;
    watched = true;
    await sleep(POLL_MS, signal);
  }
}
