"""Fixtures for the dashboard tests: a demo run, the real app served over HTTP, and a headless chromium.

The demo run is scripted (deterministic, milliseconds): two candidates whose answers get worse labels at set rates
per evaluation type, so the report has a recommendation, intervals, loss curves and divergent samples to show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from browser import CHROMIUM, CHROMIUM_ARGS
from factories import chat_record
from flywheel.backends import ChatRequest, Generation
from flywheel.backends.scripted import ScriptedInferenceBackend, last_user_text
from flywheel.config import NIMConfig, Settings
from flywheel.service.api import create_app
from scripted_jobs import Harness, ScriptedBackends, job_config
from servers import serve as serve_app

XSS = '<img src=x onerror="window.__xss = 1">'

_HEADLINES = {
    "business": [
        "{co} shares jump {n}% after quarterly results beat forecasts",
        "{co} to cut {n}00 jobs in restructuring",
        "{co} agrees ${n}bn takeover of a rival",
        "Central bank holds rates as inflation eases to {n}.{m}%",
    ],
    "sport": [
        "{team} beat {team2} {n}-{m} to reach the cup final",
        "{team} striker ruled out for {n} weeks with a knee injury",
        "{team} sign a new coach on a {n}-year deal",
        "Marathon record falls by {n} seconds in {city}",
    ],
    "tech": [
        "{co} unveils an AI chip with {n}x faster inference",
        "Data breach at {co} exposes {n} million user records",
        "{co} open-sources its {n}B-parameter language model",
        "{city} trials driverless buses on {n} routes",
    ],
    "politics": [
        "Parliament passes budget after {n}-hour debate",
        "Mayor of {city} resigns after {n} months in office",
        "Election turnout in {city} rises to {n}%",
        "{n} countries sign a climate pact in {city}",
    ],
}
TOPICS = list(_HEADLINES)
_FILL = {
    "co": ["Acme", "Globex", "Initech", "Umbrella", "Soylent", "Hooli", "Vandelay"],
    "team": ["Rovers", "United", "Athletic", "Wanderers", "City"],
    "team2": ["Albion", "Rangers", "Town", "Olympic"],
    "city": ["Lisbon", "Oslo", "Kyoto", "Denver", "Lagos", "Lyon"],
}

# Share of wrong labels per candidate and evaluation type (base / icl / customized).
ERROR_RATES = {
    "tiny-1b": {"base": 0.34, "icl": 0.17, "customized": 0.03},
    "small-3b": {"base": 0.22, "icl": 0.09, "customized": 0.02},
}


def headline(i: int) -> tuple[str, str]:
    """The i-th demo headline (all distinct) and its topic."""
    topic = TOPICS[i % len(TOPICS)]
    template = _HEADLINES[topic][(i // len(TOPICS)) % 4]
    fill = {k: v[i % len(v)] for k, v in _FILL.items()}
    return template.format(n=i + 2, m=i % 9, **fill), topic


def _prompt(text: str) -> str:
    return f"Classify this headline: {text}"


_TOPIC_OF = {_prompt(text): topic for text, topic in map(headline, range(2000))}


def demo_logs(n: int) -> list[dict[str, Any]]:
    """``n`` logged teacher answers of a headline classifier (workload ``news``, client ``web``)."""
    records = []
    for i in range(n):
        text, topic = headline(i)
        records.append(
            chat_record(
                _prompt(text),
                f"[[[{topic}]]]",
                workload_id="news",
                client_id="web",
                timestamp=1_760_000_000 + i,
            )
        )
    return records


def _fraction(text: str, salt: str) -> float:
    return int(hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def demo_answer(model: str, customized: bool) -> Callable[[ChatRequest], Generation]:
    """A rule for ``model`` that mislabels a fixed share of headlines (the share depends on the evaluation type)."""

    def rule(request: ChatRequest) -> Generation:
        text = last_user_text(request)
        system = next((str(m.get("content")) for m in request.messages if m.get("role") == "system"), "")
        eval_type = "customized" if customized else "icl" if "[[[" in system else "base"
        topic = _TOPIC_OF[text]
        wrong = _fraction(text, model + eval_type) < ERROR_RATES[model][eval_type]
        answer = f"[[[{TOPICS[(TOPICS.index(topic) + 1) % len(TOPICS)]}]]]" if wrong else f"[[[{topic}]]]"
        if wrong and model == "small-3b" and eval_type == "base" and _fraction(text, "xss") < 0.15:
            answer += f" {XSS}"
        size = 1.0 if model == "tiny-1b" else 2.2
        return Generation(
            content=answer,
            prompt_tokens=sum(len(str(m.get("content") or "").split()) for m in request.messages),
            completion_tokens=len(answer.split()) + 2,
            latency_s=size * (0.05 + 0.06 * _fraction(text, "latency")),
        )

    return rule


class DemoBackends(ScriptedBackends):
    """Scripted backends whose answers depend on the candidate and on whether it was fine-tuned."""

    def inference(self, nim: NIMConfig, *, adapter_dir: Path | None = None) -> Any:
        return ScriptedInferenceBackend(
            rule=demo_answer(nim.model_name, customized=adapter_dir is not None),
            name=nim.model_name,
            adapter_dir=adapter_dir,
        )


def demo_config() -> Any:
    """Two candidates, 100 evaluation samples, LoRA for both; the teacher is a 70B model."""
    return job_config(
        cost={"teacher_parameters_b": 70},
        data_split_config={"eval_size": 100, "val_ratio": 0.1, "min_total_records": 30, "random_seed": 1},
        nims=[
            {
                "model_name": "tiny-1b",
                "backend": "scripted",
                "customization_enabled": True,
                "parameters_b": 1.0,
            },
            {
                "model_name": "small-3b",
                "backend": "scripted",
                "customization_enabled": True,
                "parameters_b": 3.0,
            },
        ],
    )


class NoExecutor:
    """Stands in for the job executor where the test's runs were finished beforehand."""

    def submit(self, job_id: str) -> None:
        raise AssertionError(f"no job should be submitted here (got {job_id})")

    def stop(self, timeout: float | None = None) -> None:
        """Nothing to stop."""


@pytest.fixture
def make_app() -> Callable[..., Any]:
    """Why: every test builds the real app on its own store.

    ``make_app(url, home, keys="", engine=None, backends=None)``: with ``backends`` the in-process executor runs
    submitted jobs on them; without, jobs were run beforehand and nothing may be submitted.
    """

    def make(url: str, home: Path, keys: str = "", *, engine: Any = None, backends: Any = None) -> Any:
        env = {"FLYWHEEL_DATABASE_URL": url, "FLYWHEEL_HOME": str(home), "FLYWHEEL_API_KEYS": keys}
        settings = Settings.from_env(job_config(), None, env)
        executor = None if backends is not None else NoExecutor()
        return create_app(settings, engine=engine, executor=executor, backends=backends)

    return make


@dataclass
class DemoRun:
    """A store holding one finished demo run."""

    url: str
    home: Path
    engine: Any
    job_id: str


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """Why: the dashboard needs a finished run with something to show. Building it takes seconds (bootstrap
    intervals), so a module's tests share one store, in its own temporary home, and only read it."""
    home = tmp_path_factory.mktemp("flywheel-home")
    url = f"sqlite:///{home / 'flywheel.db'}"
    h = Harness(url, home)
    h.backends = DemoBackends()
    h.ingest(demo_logs(480))
    job_id = h.submit(demo_config())
    assert h.run(job_id) == "completed"
    yield DemoRun(url, home, h.engine, job_id)
    h.engine.dispose()


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """Why: browser tests need the app on a real port; ``serve(app)`` returns its base URL until the test ends."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(serve_app(app))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Why: launching chromium takes a second or two; one browser serves a module, each test gets a fresh context."""
    if not CHROMIUM.exists():
        pytest.skip(f"the browser tests need Debian chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser tests need the playwright package"
    )
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Why: each test gets a clean 1280×800 tab (own sessionStorage) that may only reach the server under test.

    ``open_page(base_url, route)`` returns the page at ``base_url/`` + ``route`` (e.g. ``#/runs/ID``); any request to another origin is blocked and fails
    the test afterwards, as does an error thrown by the page's scripts.
    """
    contexts: list[Any] = []
    outside: list[str] = []
    page_errors: list[str] = []

    def open_(base_url: str, route: str = "") -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(context)

        def only_local(route: Any) -> None:
            if route.request.url.startswith(base_url + "/"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.goto(f"{base_url}/{route}")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert outside == [], f"the dashboard requested URLs outside the server: {outside}"
    assert page_errors == [], f"the dashboard threw: {page_errors}"
