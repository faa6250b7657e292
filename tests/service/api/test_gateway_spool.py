"""The gateway while its store is down: records wait in the disk spool and are stored once it is back.

flywheel (``create_app``) and a minimal upstream run under uvicorn; the store is made unavailable by making
ingestion raise, which is what a dead database connection does to the gateway's delivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select

import flywheel.pipeline.ingest as ingest_module
from flywheel.config import FlywheelConfig, Settings
from flywheel.service.api import create_app
from flywheel.store import log_records, open_store
from openai_streams import echo_upstream
from servers import serve


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """Why: one upstream for the module (start-up costs); it is stateless."""
    with serve(echo_upstream()) as url:
        yield url + "/v1"


class StoreOutage:
    """Makes ingestion raise while ``down`` is set, as a dead database does; counts the failed calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = True
        self.failures = 0
        real = ingest_module.ingest_objects

        def ingest(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.failures += 1
                raise ConnectionError("the database is unreachable")
            return real(*args, **kwargs)

        monkeypatch.setattr(ingest_module, "ingest_objects", ingest)


@pytest.fixture
def flywheel_app(
    tmp_path: Path, upstream: str
) -> Iterator[Callable[[Engine], tuple[str, FastAPI, ExitStack]]]:
    """Why: each test gets its own spool directory; a test may start several apps (a restart) over it."""
    stacks: list[ExitStack] = []

    def start(engine: Engine) -> tuple[str, FastAPI, ExitStack]:
        config = FlywheelConfig.model_validate(
            {"gateway": {"upstream": {"base_url": upstream}, "spool_dir": str(tmp_path / "spool")}}
        )
        settings = Settings.from_env(config, None, {"FLYWHEEL_HOME": str(tmp_path)})
        app = create_app(settings, engine=engine, executor=_NoExecutor())
        stack = ExitStack()
        url = stack.enter_context(serve(app))
        stacks.append(stack)
        return url, app, stack

    yield start
    for stack in reversed(stacks):
        stack.close()


class _NoExecutor:
    def submit(self, job_id: str) -> None:  # the gateway runs no jobs
        pass


def send(url: str, question: str) -> None:
    body = {"model": "teacher", "messages": [{"role": "user", "content": question}]}
    assert httpx.post(url + "/v1/chat/completions", json=body, timeout=10).status_code == 200


def stored_questions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(log_records.c.data).order_by(log_records.c.timestamp)).all()
    return [orjson.loads(row.data)["request"]["messages"][-1]["content"] for row in rows]


def test_exchanges_logged_while_the_store_is_down_are_all_stored_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flywheel_app: Callable[..., Any]
) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'flywheel.db'}")
    outage = StoreOutage(monkeypatch)
    url, app, _ = flywheel_app(engine)
    gateway = app.state.gateway
    sent = [f"question {i}" for i in range(6)]
    for question in sent[:3]:
        send(url, question)
        assert gateway.flush(5)  # one batch per exchange
    assert outage.failures >= 1 and stored_questions(engine) == []
    outage.down = False
    for question in sent[3:]:
        send(url, question)  # the store is back, but these wait behind the spool until its next retry
        assert gateway.flush(5)
    # they wait behind the spool until its next retry (the timer's, or this one): either way in order, once
    gateway.spool.replay()
    assert stored_questions(engine) == sent
    assert gateway.spool.stats.pending_segments == 0 and gateway.sink.stats.failed == 0
    engine.dispose()


def test_exchanges_spooled_before_a_clean_restart_are_stored_by_the_next_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flywheel_app: Callable[..., Any]
) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'flywheel.db'}")
    outage = StoreOutage(monkeypatch)
    url, _, stack = flywheel_app(engine)
    sent = [f"question {i}" for i in range(4)]
    for question in sent:
        send(url, question)
    stack.close()  # a clean shutdown while the store is down: the queued records go to the spool
    assert list((tmp_path / "spool").glob("*.jsonl"))

    assert outage.failures >= 1
    outage.down = False  # the store is back
    flywheel_app(engine)  # the next process replays the spool at start-up, with no new traffic
    deadline = time.monotonic() + 20  # generous: a loaded CI machine
    while stored_questions(engine) != sent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stored_questions(engine) == sent
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    engine.dispose()
