// The runs list: newest first, filterable by status and workload, paginated, with each run's best candidate.

import { api } from "./api.js";
import { DASH, badge, duration, h, isActive, pct, replace, section, sleep, when } from "./dom.js";

const PAGE_SIZE = 20;
const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];

// Finished runs' reports do not change: keep their summaries across refreshes and pages.
const summaries = new Map();

/** The candidate a report points at (the recommendation, else the near miss) and its saving. */
function bestOf(report) {
  const rec = report.recommendation || {};
  const pick = rec.status === "recommended" ? rec : rec.near_miss;
  if (!pick) return { text: rec.status === "pending" ? "pending" : DASH, saving: null, status: rec.status };
  return { text: `${pick.candidate} (${pick.eval_type})`, saving: pick.saving_pct, status: rec.status };
}

async function summary(job, signal) {
  if (summaries.has(job.id)) return summaries.get(job.id);
  const result = bestOf(await api(`api/jobs/${encodeURIComponent(job.id)}/report`, {}, signal));
  if (!isActive(job.status)) summaries.set(job.id, result);
  return result;
}

function runHref(id) {
  return `#/runs/${encodeURIComponent(id)}`;
}

function listHref(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value) params.set(key, String(value));
  const text = params.toString();
  return text ? `#/?${text}` : "#/";
}

function filters(query) {
  const status = h(
    "select",
    { id: "filter-status", "aria-label": "Status" },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === query.status }, s)),
  );
  const workload = h("input", {
    id: "filter-workload",
    type: "search",
    placeholder: "workload_id",
    "aria-label": "Workload",
    value: query.workload_id || "",
  });
  const apply = (event) => {
    event.preventDefault();
    location.hash = listHref({ status: status.value, workload_id: workload.value.trim() });
  };
  status.addEventListener("change", apply);
  return h(
    "form",
    { class: "filters", onsubmit: apply },
    h("label", {}, "Status ", status),
    h("label", {}, "Workload ", workload),
  );
}

function row(job, signal) {
  const best = h("td", { class: "best" }, h("span", { class: "muted" }, "…"));
  const saving = h("td", { class: "num" }, "");
  summary(job, signal).then(
    (result) => {
      replace(
        best,
        result.status === "recommended" ? h("span", { class: "tick-mark", title: "recommended" }, "✓ ") : null,
        result.text,
      );
      if (result.status !== "recommended" && result.text !== DASH && result.text !== "pending") {
        best.append(h("span", { class: "muted small" }, " near miss"));
      }
      replace(saving, pct(result.saving));
    },
    (error) => {
      if (error?.name !== "AbortError") replace(best, h("span", { class: "muted" }, DASH));
    },
  );
  return h(
    "tr",
    { "data-testid": "run-row", "data-job-id": job.id },
    h("td", {}, h("a", { href: runHref(job.id), class: "mono" }, job.id)),
    h("td", {}, badge(job.status)),
    h("td", {}, job.workload_id),
    h("td", {}, job.client_id),
    h("td", { class: "nowrap" }, when(job.started_at)),
    h("td", { class: "nowrap num" }, job.started_at ? duration(job.started_at, job.finished_at) : DASH),
    best,
    saving,
  );
}

function pager(query, page) {
  const offset = page.offset;
  const first = page.total ? offset + 1 : 0;
  const last = offset + page.jobs.length;
  const prev = Math.max(0, offset - PAGE_SIZE);
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("span", { class: "muted", "data-testid": "runs-range" }, `${first}–${last} of ${page.total}`),
    offset > 0 ? h("a", { href: listHref({ ...query, offset: prev || "" }), class: "button" }, "← Newer") : null,
    last < page.total ? h("a", { href: listHref({ ...query, offset: last }), class: "button" }, "Older →") : null,
  );
}

/** Render the runs list for ``query`` ({status, workload_id, offset}); refreshes while a listed run is active. */
export async function renderRuns(root, query, signal) {
  const body = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading runs…"));
  replace(root, h("div", { class: "toolbar" }, h("h1", {}, "Runs"), filters(query)), section(null, {}, body));
  for (;;) {
    const page = await api(
      "api/jobs",
      // newest first; the API's default is the reference's oldest-first order
      {
        order: "desc",
        limit: PAGE_SIZE,
        offset: query.offset || 0,
        status: query.status,
        workload_id: query.workload_id,
      },
      signal,
    );
    if (!page.jobs.length) {
      replace(
        body,
        h(
          "p",
          { class: "empty" },
          page.total
            ? "No runs on this page."
            : ["No runs yet. Start one with ", h("code", {}, "flywheel run"), " or POST /api/jobs."],
        ),
        page.total ? pager(query, page) : null,
      );
    } else {
      replace(
        body,
        h(
          "table",
          { class: "runs" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Run", "Status", "Workload", "Client", "Started", "Duration", "Best candidate", "Saving"].map((t) =>
                h("th", { scope: "col" }, t),
              ),
            ),
          ),
          h(
            "tbody",
            {},
            page.jobs.map((job) => row(job, signal)),
          ),
        ),
        pager(query, page),
      );
    }
    if (!page.jobs.some((job) => isActive(job.status))) return;
    await sleep(2000, signal);
  }
}
