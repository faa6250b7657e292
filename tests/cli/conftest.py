"""Fixtures of the CLI tests: a finished scripted job in a temporary store, and a real server in front of it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from flywheel.config import Settings
from flywheel.service.api import create_app
from scripted_jobs import Harness, ScriptedBackends, classification_logs, job_config


@pytest.fixture
def finished_job(sqlite_url: str, home: Path) -> Iterator[tuple[Settings, str]]:
    harness = Harness(sqlite_url, home)
    harness.ingest(classification_logs(60))
    job_id = harness.submit()
    assert harness.run(job_id) == "completed"
    env = {"FLYWHEEL_DATABASE_URL": sqlite_url, "FLYWHEEL_HOME": str(home), "FLYWHEEL_API_KEYS": "k1"}
    yield Settings.from_env(job_config(), None, env), job_id
    harness.engine.dispose()


@pytest.fixture
def server(finished_job: tuple[Settings, str]) -> Iterator[str]:
    settings, _ = finished_job
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, backends=ScriptedBackends()), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
