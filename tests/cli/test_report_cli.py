"""`flywheel report JOB [--json|--markdown]` on the local store and through a server."""

from __future__ import annotations

import json

from click.testing import CliRunner

from flywheel.cli.main import cli
from flywheel.config import Settings


def test_report_prints_json_markdown_and_text(finished_job: tuple[Settings, str]) -> None:
    settings, job_id = finished_job
    runner = CliRunner()
    as_json = runner.invoke(cli, ["report", job_id, "--json"], obj=settings)
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["job_id"] == job_id and report["primary_metric"] == "f1_score"
    assert report["recommendation"]["status"] in ("recommended", "no_candidate")
    markdown = runner.invoke(cli, ["report", job_id, "--markdown"], obj=settings).stdout
    assert markdown.startswith(f"# flywheel report — job {job_id}")
    assert "| Candidate | Eval | n | f1_score |" in markdown
    text = runner.invoke(cli, ["report", job_id], obj=settings).stdout
    assert "Recommendation" in text and "| Candidate" not in text  # rendered, not raw Markdown


def test_report_through_a_server(server: str, finished_job: tuple[Settings, str]) -> None:
    settings, job_id = finished_job
    runner = CliRunner()
    result = runner.invoke(
        cli, ["report", job_id, "--json", "--server", server, "--api-key", "k1"], obj=settings
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["job_id"] == job_id
    missing = runner.invoke(cli, ["report", "nope", "--server", server, "--api-key", "k1"], obj=settings)
    assert missing.exit_code == 2 and "not found" in missing.output
