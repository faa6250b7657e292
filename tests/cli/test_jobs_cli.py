"""`flywheel jobs list|show|cancel|delete` on the local store and against a real server (--server)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner

from flywheel.cli.main import cli
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


def test_local_list_show_and_delete(finished_job: tuple[Settings, str]) -> None:
    settings, job_id = finished_job
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["jobs", "list", "--json"], obj=settings).stdout)
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    shown = runner.invoke(cli, ["jobs", "show", job_id], obj=settings)
    assert "base-eval" in shown.stdout and "f1_score" in shown.stdout
    assert runner.invoke(cli, ["jobs", "delete", job_id], obj=settings).exit_code == 0
    missing = runner.invoke(cli, ["jobs", "show", job_id], obj=settings)
    assert missing.exit_code == 2 and "not found" in missing.output


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


def test_remote_commands_talk_to_the_server(server: str, finished_job: tuple[Settings, str]) -> None:
    settings, job_id = finished_job
    runner = CliRunner()
    base = ["jobs", "--server", server, "--api-key", "k1"]
    listed = json.loads(runner.invoke(cli, [*base, "list", "--json"], obj=settings).stdout)
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    detail = json.loads(runner.invoke(cli, [*base, "show", job_id, "--json"], obj=settings).stdout)
    assert detail["status"] == "completed"
    refused = runner.invoke(cli, [*base, "cancel", job_id], obj=settings)
    assert refused.exit_code == 2 and "already finished" in refused.output
    assert runner.invoke(cli, [*base, "delete", job_id], obj=settings).exit_code == 0
    unauthorized = runner.invoke(cli, ["jobs", "--server", server, "list"], obj=settings)
    assert unauthorized.exit_code == 2 and "FLYWHEEL_API_KEY" in unauthorized.output
