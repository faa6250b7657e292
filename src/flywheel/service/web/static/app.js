// The flywheel dashboard: a single page with hash routes.
//   #/                 runs list (query: status, workload_id, offset)
//   #/runs/{job_id}    one run: report, live progress, samples

import { forgetKey } from "./api.js";
import { h, replace } from "./dom.js";
import { renderRun } from "./run.js";
import { renderRuns } from "./runs.js";

const main = document.getElementById("main");
let current = null; // the AbortController of the page on screen: stops its polling when the route changes

function parseRoute() {
  const [path, search] = location.hash.replace(/^#/, "").split("?");
  const query = Object.fromEntries(new URLSearchParams(search || ""));
  const run = /^\/runs\/([^/]+)$/.exec(path || "");
  return run ? { page: "run", id: decodeURIComponent(run[1]) } : { page: "runs", query };
}

async function route() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const target = parseRoute();
  document.title = target.page === "run" ? `Run ${target.id} · flywheel` : "Runs · flywheel";
  try {
    if (target.page === "run") await renderRun(main, target.id, controller.signal);
    else await renderRuns(main, target.query, controller.signal);
  } catch (error) {
    if (controller.signal.aborted || error?.name === "AbortError") return;
    replace(
      main,
      h(
        "div",
        { class: "callout callout-failed", role: "alert" },
        h("strong", {}, error.status === 404 ? "Not found. " : "Something went wrong. "),
        error.message || String(error),
        " ",
        h("a", { href: "#/" }, "Back to runs"),
      ),
    );
  }
}

document.getElementById("forget-key").addEventListener("click", () => {
  forgetKey();
  route();
});
window.addEventListener("hashchange", route);
route();
