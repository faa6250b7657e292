// The per-sample evidence of a run: teacher vs candidate answers, lowest score first, with filters and paging.

import { api } from "./api.js";
import { EVAL_TYPES } from "./charts.js";
import { DASH, h, isActive, num, replace } from "./dom.js";

const PAGE_SIZE = 10;
const DIVERGENT_MAX_SCORE = 0.99;

function answerBlock(message, error) {
  if (error) return h("div", { class: "answer answer-error" }, `error: ${error}`);
  if (!message) return h("div", { class: "answer muted" }, DASH);
  const calls = message.tool_calls || [];
  return h(
    "div",
    { class: "answer" },
    message.content ? h("div", { class: "answer-text" }, message.content) : null,
    calls.length ? h("pre", { class: "tool-calls" }, JSON.stringify(calls, null, 1)) : null,
    !message.content && !calls.length ? h("span", { class: "muted" }, "(empty)") : null,
  );
}

function scoreCell(score) {
  const cls = score === null || score === undefined ? "" : score >= 0.99 ? "good" : score > 0 ? "partial" : "bad";
  return h("td", { class: `num score ${cls}` }, num(score, 2));
}

function judgeBlock(judge) {
  if (!judge || !judge.length) return h("span", { class: "muted" }, DASH);
  return judge.map((verdict) =>
    h(
      "div",
      { class: "judge" },
      h("strong", {}, `${verdict.metric}: ${num(verdict.score, 2)}`),
      verdict.explanation ? h("div", {}, verdict.explanation) : null,
    ),
  );
}

function sampleRow(sample, withJudge) {
  const labels = sample.labels && sample.labels.teacher !== undefined ? sample.labels : null;
  return h(
    "tr",
    { "data-testid": "sample-row", "data-record-id": sample.record_id },
    scoreCell(sample.score),
    h(
      "td",
      { class: "nowrap" },
      h("div", {}, sample.candidate),
      h("div", { class: "muted small" }, `${sample.eval_type} · #${sample.index}`),
      labels
        ? h("div", { class: "small label-diff" }, `${labels.teacher ?? DASH} → ${labels.candidate ?? DASH}`)
        : null,
    ),
    h("td", {}, h("div", { class: "prompt" }, sample.prompt_excerpt || DASH)),
    h("td", {}, answerBlock(sample.teacher)),
    h("td", {}, answerBlock(sample.answer, sample.candidate_error)),
    withJudge ? h("td", {}, judgeBlock(sample.judge)) : null,
  );
}

function defaultsFrom(report) {
  const rec = report.recommendation || {};
  const pick = rec.status === "recommended" ? rec : rec.near_miss;
  return { candidate: pick?.candidate || "", eval_type: pick?.eval_type || "" };
}

/**
 * Fill ``card`` with the samples explorer of job ``jobId``. It starts on the recommended (or near-miss) candidate's
 * divergent samples; ``update(report)`` refreshes the candidate list and reloads (the run may have moved on).
 */
export function samplesExplorer(card, jobId, report, pageSignal) {
  const state = { ...defaultsFrom(report), divergent: true, search: "", offset: 0 };
  let touched = false;
  let running = isActive(report.status);
  let loading = null;
  let generation = 0;

  const candidate = h("select", { "aria-label": "Candidate", "data-testid": "filter-candidate" });
  const evalType = h(
    "select",
    { "aria-label": "Evaluation", "data-testid": "filter-eval-type" },
    h("option", { value: "" }, "all evaluations"),
    EVAL_TYPES.map((t) => h("option", { value: t }, t)),
  );
  const divergent = h("input", { type: "checkbox", "data-testid": "filter-divergent", checked: true });
  const search = h("input", {
    type: "search",
    placeholder: "Search prompt or answers",
    "aria-label": "Search",
    "data-testid": "filter-search",
    maxlength: 200,
  });
  const summary = h("span", { class: "muted", "data-testid": "samples-total", "aria-live": "polite" });
  const body = h("div", { class: "table-wrap" });
  const pager = h("nav", { class: "pager", "aria-label": "Sample pages" });

  function setCandidates(names) {
    replace(
      candidate,
      h("option", { value: "" }, "all candidates"),
      names.map((n) => h("option", { value: n }, n)),
    );
    candidate.value = names.includes(state.candidate) ? state.candidate : "";
    state.candidate = candidate.value;
    evalType.value = state.eval_type;
  }

  function changed(key, value) {
    touched = true;
    state[key] = value;
    state.offset = 0;
    load();
  }

  candidate.addEventListener("change", () => changed("candidate", candidate.value));
  evalType.addEventListener("change", () => changed("eval_type", evalType.value));
  divergent.addEventListener("change", () => changed("divergent", divergent.checked));
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => changed("search", search.value.trim()), 300);
  });

  async function load() {
    const mine = ++generation;
    loading?.abort();
    loading = new AbortController();
    const signal = AbortSignal.any([pageSignal, loading.signal]);
    body.setAttribute("aria-busy", "true");
    let page;
    try {
      page = await api(
        `api/jobs/${encodeURIComponent(jobId)}/samples`,
        {
          candidate: state.candidate,
          eval_type: state.eval_type,
          max_score: state.divergent ? DIVERGENT_MAX_SCORE : null,
          search: state.search,
          limit: PAGE_SIZE,
          offset: state.offset,
        },
        signal,
      );
    } catch (error) {
      if (error?.name === "AbortError" || mine !== generation) return;
      replace(body, h("p", { class: "error" }, `Could not load samples: ${error.message}`));
      return;
    }
    if (mine !== generation) return;
    body.removeAttribute("aria-busy");
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.samples.length;
    replace(summary, `${first}–${last} of ${page.total} ${state.divergent ? "divergent " : ""}samples`);
    if (!page.samples.length) {
      replace(
        body,
        h(
          "p",
          { class: "empty", "data-testid": "samples-empty" },
          running
            ? "No samples yet: they appear as evaluations finish."
            : state.divergent && !state.search
              ? "No divergent samples: every answer here matched the teacher's."
              : "No samples match these filters.",
        ),
      );
    } else {
      const withJudge = page.samples.some((x) => x.judge && x.judge.length);
      const heads = ["Score", "Candidate", "Prompt", "Teacher", "Candidate answer", ...(withJudge ? ["Judge"] : [])];
      replace(
        body,
        h(
          "table",
          { class: "samples", "data-testid": "samples-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              heads.map((t) => h("th", { scope: "col" }, t)),
            ),
          ),
          h(
            "tbody",
            {},
            page.samples.map((x) => sampleRow(x, withJudge)),
          ),
        ),
      );
    }
    const go = (offset) => () => {
      state.offset = offset;
      load();
    };
    replace(
      pager,
      page.offset > 0
        ? h("button", { type: "button", onclick: go(Math.max(0, page.offset - PAGE_SIZE)) }, "← Previous")
        : null,
      last < page.total
        ? h("button", { type: "button", onclick: go(last), "data-testid": "samples-next" }, "Next →")
        : null,
    );
  }

  replace(
    card,
    h("h2", {}, "Samples: teacher vs candidate"),
    h(
      "p",
      { class: "muted" },
      "Each evaluation sample with the teacher's logged answer, the candidate's answer and its score, lowest first.",
    ),
    h(
      "div",
      { class: "filters" },
      h("label", {}, "Candidate ", candidate),
      h("label", {}, "Evaluation ", evalType),
      h("label", { class: "check" }, divergent, " Divergent only"),
      search,
      summary,
    ),
    body,
    pager,
  );
  setCandidates(report.candidates.map((c) => c.model_name));
  load();

  return {
    /** Take a newer report: refresh the candidate list (and, if the user has not chosen, the defaults); reload. */
    update(newer) {
      running = isActive(newer.status);
      if (!touched) Object.assign(state, defaultsFrom(newer));
      setCandidates(newer.candidates.map((c) => c.model_name));
      load();
    },
  };
}
