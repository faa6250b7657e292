"""The dashboard in headless chromium against the real app served over HTTP (scripted model backends)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel.pipeline.ingest import ingest_objects
from flywheel.service.jobs import job_samples
from flywheel.store import open_store
from scripted_jobs import Harness, ScriptedBackends, classification_logs, knows_topics

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[3] / "artifacts" / "dashboard.png"


@pytest.fixture
def expect() -> Any:
    from playwright.sync_api import expect

    return expect


@pytest.fixture
def demo_url(demo_run: Any, make_app: Callable[..., Any], serve: Callable[[Any], str]) -> str:
    return serve(make_app(demo_run.url, demo_run.home, engine=demo_run.engine))


def _divergent_total(demo_run: Any, **filters: Any) -> int:
    return job_samples(demo_run.engine, demo_run.job_id, max_score=0.99, **filters)[1]


def test_finished_run_shows_recommendation_chart_and_divergent_samples(
    open_page: Callable[..., Any], demo_url: str, demo_run: Any, expect: Any, record_property: Any
) -> None:
    page = open_page(demo_url)
    row = page.get_by_test_id("run-row")
    expect(row).to_have_count(1)
    expect(row.locator("td.best")).to_have_text("✓ tiny-1b (customized)")
    expect(row).to_contain_text("99.0%")
    row.get_by_role("link", name=demo_run.job_id).click()
    expect(page).to_have_url(re.compile(rf"#/runs/{demo_run.job_id}$"))

    recommendation = page.get_by_test_id("recommendation")
    expect(recommendation).to_have_attribute("data-status", "recommended")
    expect(recommendation.get_by_role("heading", level=2)).to_have_text("Recommended: tiny-1b (customized)")
    expect(recommendation.get_by_test_id("recommendation-message")).to_contain_text("can replace the teacher")
    expect(page.get_by_test_id("never-deploys")).to_contain_text("flywheel never deploys")

    chart = page.get_by_test_id("score-chart")
    expect(chart.get_by_test_id("bar")).to_have_count(6)
    expect(chart.get_by_test_id("error-bar")).to_have_count(6)
    expect(chart.get_by_test_id("threshold-line")).to_have_attribute(
        "aria-label", "threshold f1_score ≥ 0.90"
    )
    winner = chart.locator('[data-testid=bar][data-candidate="tiny-1b"][data-eval-type="customized"]')
    expect(winner).to_have_attribute(
        "aria-label", re.compile(r"f1_score 0\.9\d\d \(95% CI 0\.9\d\d–\d\.\d{3}, n=100\)")
    )
    expect(page.get_by_test_id("score-row")).to_have_count(6)
    expect(page.get_by_test_id("teacher-row")).to_contain_text("meta/llama-3.3-70b-instruct")
    expect(page.get_by_test_id("loss-chart")).to_have_count(2)
    expect(page.get_by_test_id("curation-counts")).to_contain_text("480")
    expect(page.get_by_test_id("split-classes")).to_contain_text("politics")

    samples = page.get_by_test_id("samples")
    rows = samples.get_by_test_id("sample-row")
    total = samples.get_by_test_id("samples-total")
    shown = _divergent_total(demo_run, candidate="tiny-1b", eval_type="customized")
    assert shown > 0
    expect(total).to_have_text(f"1–{min(shown, 10)} of {shown} divergent samples")
    expect(rows).to_have_count(min(shown, 10))
    expect(rows.first.locator("td.score")).to_have_text("0.00")
    expect(rows.first).to_contain_text("customized")

    overflowing = page.evaluate(
        "[...document.querySelectorAll('.table-wrap')].filter(e => e.scrollWidth > e.clientWidth).length"
    )
    assert overflowing == 0, "a table needs a horizontal scroll bar at 1280×800"

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    record_property("screenshot", str(SCREENSHOT))
    print(f"\nscreenshot: {SCREENSHOT}")

    samples.get_by_test_id("filter-candidate").select_option("small-3b")
    samples.get_by_test_id("filter-eval-type").select_option("base")
    base_divergent = _divergent_total(demo_run, candidate="small-3b", eval_type="base")
    expect(total).to_have_text(f"1–10 of {base_divergent} divergent samples")
    expect(rows).to_have_count(10)
    for text in rows.all_inner_texts():
        assert "small-3b" in text and "base" in text
    samples.get_by_test_id("filter-divergent").uncheck()
    expect(total).to_have_text("1–10 of 100 samples")
    for page_number in range(1, base_divergent // 10 + 1):
        samples.get_by_test_id("samples-next").click()
        expect(total).to_have_text(re.compile(rf"^{page_number * 10 + 1}–\d+ of 100 samples$"))
    expect(rows.last.locator("td.score")).to_have_text("1.00")  # past the divergent ones


def test_log_content_is_shown_as_text_never_as_markup(
    open_page: Callable[..., Any], demo_url: str, demo_run: Any, expect: Any
) -> None:
    page = open_page(demo_url, f"#/runs/{demo_run.job_id}")
    samples = page.get_by_test_id("samples")
    samples.get_by_test_id("filter-candidate").select_option("")
    samples.get_by_test_id("filter-eval-type").select_option("")
    samples.get_by_test_id("filter-search").fill("onerror")
    hits = _divergent_total(demo_run, search="onerror")
    assert hits > 0
    expect(samples.get_by_test_id("samples-total")).to_have_text(
        f"1–{min(hits, 10)} of {hits} divergent samples"
    )
    answers = samples.get_by_test_id("sample-row").locator("td:nth-child(5)")
    expect(answers.first).to_contain_text('<img src=x onerror="window.__xss = 1">')
    expect(page.locator("main img")).to_have_count(0)
    assert page.evaluate("window.__xss") is None


def test_running_job_shows_live_progress_then_the_finished_report(
    open_page: Callable[..., Any],
    make_app: Callable[..., Any],
    serve: Callable[[Any], str],
    sqlite_url: str,
    home: Path,
    expect: Any,
) -> None:
    engine = open_store(sqlite_url)
    ingest_objects(engine, classification_logs(60), source="test")
    # training sleeps 0.08 s a step for ~36 steps: a few seconds in which the page polls the progress
    url = serve(
        make_app(sqlite_url, home, engine=engine, backends=ScriptedBackends(knows_topics, step_s=0.08))
    )
    job_id = httpx.post(f"{url}/api/jobs", json={"workload_id": "news", "client_id": "web"}).json()["id"]
    page = open_page(url, f"#/runs/{job_id}")

    percent = page.get_by_test_id("progress-percent")
    expect(percent).to_be_visible()
    first = float(percent.get_attribute("data-percent"))
    assert first < 100
    later = page.wait_for_function(
        """(first) => {
            const el = document.querySelector('[data-testid=progress-percent]');
            const value = el ? Number(el.dataset.percent) : NaN;
            return value > first && value < 100 ? value : null;
        }""",
        arg=first,
        timeout=15_000,
    ).json_value()
    assert first < later < 100
    expect(page.get_by_test_id("step").first).to_be_visible()

    expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=20_000)
    expect(page.get_by_test_id("progress")).to_have_count(0)
    expect(page.get_by_test_id("recommendation")).to_have_attribute("data-status", "recommended")
    expect(page.get_by_test_id("score-chart").get_by_test_id("bar")).to_have_count(3)
    expect(page.get_by_test_id("samples-empty")).to_have_text(
        "No divergent samples: every answer here matched the teacher's."
    )

    calls: list[str] = []
    page.on("request", lambda request: calls.append(request.url))
    time.sleep(1.5)  # one and a half poll periods: a finished run must not be polled any more
    assert calls == []
    engine.dispose()


def test_page_asks_for_the_api_key_then_shows_the_runs(
    open_page: Callable[..., Any],
    make_app: Callable[..., Any],
    serve: Callable[[Any], str],
    demo_run: Any,
    expect: Any,
) -> None:
    url = serve(make_app(demo_run.url, demo_run.home, keys="s3cret", engine=demo_run.engine))
    page = open_page(url)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("API key required")
    expect(page.get_by_test_id("run-row")).to_have_count(0)

    dialog.get_by_label("API key").fill("wrong")
    dialog.get_by_role("button", name="Continue").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Invalid API key.")
    expect(page.get_by_test_id("run-row")).to_have_count(0)

    dialog.get_by_label("API key").fill("s3cret")
    dialog.get_by_role("button", name="Continue").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("run-row")).to_have_count(1)
    expect(page.get_by_test_id("run-row").locator("td.best")).to_have_text("✓ tiny-1b (customized)")
    assert page.evaluate("sessionStorage.getItem('flywheel.apiKey')") == "s3cret"


def test_runs_list_pages_and_filters_by_status(
    open_page: Callable[..., Any],
    make_app: Callable[..., Any],
    serve: Callable[[Any], str],
    sqlite_url: str,
    home: Path,
    expect: Any,
) -> None:
    harness = Harness(sqlite_url, home)
    harness.ingest(classification_logs(60))
    finished = harness.submit()
    assert harness.run(finished) == "completed"
    for _ in range(22):
        harness.submit()  # never run: pending
    page = open_page(serve(make_app(sqlite_url, home, engine=harness.engine)))
    rows = page.get_by_test_id("run-row")
    expect(page.get_by_test_id("runs-range")).to_have_text("1–20 of 23")
    expect(rows).to_have_count(20)
    page.get_by_role("link", name="Older →").click()
    expect(page.get_by_test_id("runs-range")).to_have_text("21–23 of 23")
    expect(rows).to_have_count(3)
    expect(rows.last).to_have_attribute("data-job-id", finished)
    page.get_by_label("Status").select_option("completed")
    expect(page.get_by_test_id("runs-range")).to_have_text("1–1 of 1")
    expect(rows.locator("td.best")).to_have_text("tiny (base) near miss")  # the scripted candidate is wrong
    harness.engine.dispose()
