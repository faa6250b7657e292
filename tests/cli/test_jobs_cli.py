"""`flywheel jobs list|show|cancel|delete` on the local store and against a real server (--server)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from flywheel.cli.main import cli
from flywheel.config import Settings


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
