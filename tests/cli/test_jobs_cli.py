"""`flywheel jobs list|show|cancel|delete` on the local store and against a real server (--server)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from flywheel.cli.main import cli
from flywheel.config import Settings
from servers import canned_answers


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


def test_server_and_api_key_work_after_the_subcommand_too(
    server: str, finished_job: tuple[Settings, str]
) -> None:
    settings, job_id = finished_job
    runner = CliRunner()
    remote = ["--server", server, "--api-key", "k1"]
    listed = runner.invoke(cli, ["jobs", "list", *remote, "--json"], obj=settings)
    assert listed.exit_code == 0, listed.output
    assert [j["id"] for j in json.loads(listed.stdout)["jobs"]] == [job_id]
    shown = runner.invoke(cli, ["jobs", "show", job_id, *remote, "--json"], obj=settings)
    assert json.loads(shown.stdout)["status"] == "completed"
    refused = runner.invoke(cli, ["jobs", "cancel", job_id, *remote], obj=settings)
    assert refused.exit_code == 2 and "already finished" in refused.output
    # the group's --server with the subcommand's --api-key
    mixed = runner.invoke(
        cli, ["jobs", "--server", server, "delete", job_id, "--api-key", "k1"], obj=settings
    )
    assert mixed.exit_code == 0, mixed.output


def test_flywheel_server_and_api_key_come_from_the_environment(
    server: str, finished_job: tuple[Settings, str]
) -> None:
    settings, job_id = finished_job
    env = {"FLYWHEEL_SERVER": server, "FLYWHEEL_API_KEY": "k1"}
    listed = CliRunner().invoke(cli, ["jobs", "list", "--json"], obj=settings, env=env)
    assert listed.exit_code == 0, listed.output
    assert [j["id"] for j in json.loads(listed.stdout)["jobs"]] == [job_id]


def test_an_unknown_status_is_refused_with_the_valid_ones(finished_job: tuple[Settings, str]) -> None:
    settings, _ = finished_job
    result = CliRunner().invoke(cli, ["jobs", "list", "--status", "bogus"], obj=settings)
    assert result.exit_code == 2
    assert "bogus" in result.output and "completed" in result.output and "running" in result.output


def test_the_status_choices_are_the_job_statuses() -> None:
    from flywheel.cli.jobs import JOB_STATUSES
    from flywheel.service.jobs import ACTIVE, TERMINAL

    assert set(JOB_STATUSES) == ACTIVE | TERMINAL


@pytest.fixture
def fake_server() -> Iterator[tuple[str, list[tuple[int, str, bytes]]]]:
    """Why: the CLI must turn any answer a server gives into a message; this one answers what the test queues."""
    with canned_answers() as server:
        yield server


def test_a_server_validation_error_is_printed_as_text_not_a_repr(
    fake_server: tuple[str, list[tuple[int, str, bytes]]], finished_job: tuple[Settings, str]
) -> None:
    settings, _ = finished_job
    url, answers = fake_server
    detail = [
        {
            "type": "less_than_equal",
            "loc": ["query", "limit"],
            "msg": "Input should be less than or equal to 500",
        },
        {
            "type": "literal_error",
            "loc": ["query", "status"],
            "msg": "Input should be 'pending' or 'running'",
        },
    ]
    answers.append((422, "application/json", json.dumps({"detail": detail}).encode()))
    result = CliRunner().invoke(cli, ["jobs", "list", "--server", url], obj=settings)
    assert result.exit_code == 2
    assert "limit: Input should be less than or equal to 500" in result.output
    assert "status: Input should be 'pending' or 'running'" in result.output
    assert "{'" not in result.output and "[{" not in result.output and "'loc'" not in result.output


def test_an_answer_that_is_not_json_is_a_message(
    fake_server: tuple[str, list[tuple[int, str, bytes]]], finished_job: tuple[Settings, str]
) -> None:
    settings, _ = finished_job
    url, answers = fake_server
    answers.append((200, "text/html", b"<html>a web page</html>"))
    result = CliRunner().invoke(cli, ["jobs", "list", "--server", url], obj=settings)
    assert result.exit_code == 2, result.output
    assert "not a flywheel server" in result.output
    assert isinstance(result.exception, SystemExit)


def test_a_url_that_is_not_a_flywheel_server_is_a_message(finished_job: tuple[Settings, str]) -> None:
    settings, _ = finished_job
    result = CliRunner().invoke(
        cli, ["jobs", "list", "--server", "http://fly:pw-secret@127.0.0.1:1/?token=t-secret"], obj=settings
    )
    assert result.exit_code == 2
    assert "Cannot reach the flywheel server" in result.output
    assert "pw-secret" not in result.output and "t-secret" not in result.output


def test_jobs_list_prints_times_in_utc(finished_job: tuple[Settings, str]) -> None:
    import re

    settings, job_id = finished_job
    result = CliRunner().invoke(cli, ["jobs", "list"], obj=settings)
    line = next(row for row in result.stdout.splitlines() if row.startswith(job_id))
    assert re.search(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\b", line), line
    listed = json.loads(CliRunner().invoke(cli, ["jobs", "list", "--json"], obj=settings).stdout)
    assert not listed["jobs"][0]["started_at"].endswith("Z")  # the API's naive ISO format is kept


def test_list_shows_the_newest_job_first_locally_and_remotely(
    server: str, finished_job: tuple[Settings, str]
) -> None:
    from flywheel.service.jobs import JobRepository, JobRequest, submit_job
    from flywheel.store import open_store

    settings, older = finished_job
    engine = open_store(settings.database_url)
    newer = submit_job(
        JobRepository(engine), settings.config, JobRequest(workload_id="other", client_id="web")
    )
    engine.dispose()
    runner = CliRunner()
    for base in (["jobs"], ["jobs", "--server", server, "--api-key", "k1"]):
        listed = json.loads(runner.invoke(cli, [*base, "list", "--json"], obj=settings).stdout)
        assert [j["id"] for j in listed["jobs"]] == [newer, older], base
        text = runner.invoke(cli, [*base, "list"], obj=settings).stdout.splitlines()
        assert text[0].startswith(newer) and text[1].startswith(older), base
