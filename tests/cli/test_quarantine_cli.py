"""`flywheel quarantine list|show` on the local store and against a real server (--server)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from flywheel.cli.main import cli
from flywheel.config import Settings
from flywheel.pipeline.ingest import ingest_objects
from flywheel.store import open_store


@pytest.fixture
def rejected(finished_job: tuple[Settings, str]) -> Iterator[tuple[Settings, str]]:
    """Why: the CLI store (one finished job) plus one ingestion that quarantined two items; yields its id."""
    settings, _ = finished_job
    engine = open_store(settings.database_url)
    report = ingest_objects(engine, [42, "not a record"], source="api")
    engine.dispose()
    assert report.quarantined == 2
    yield settings, report.ingestion_id


def test_local_list_filters_and_show(rejected: tuple[Settings, str]) -> None:
    settings, ingestion_id = rejected
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["quarantine", "list", "--json"], obj=settings).stdout)
    assert listed["total"] == 2
    assert [r["raw"] for r in listed["records"]] == ['"not a record"', "42"]  # newest first
    assert {r["ingestion_id"] for r in listed["records"]} == {ingestion_id}
    by_reason = runner.invoke(cli, ["quarantine", "list", "--reason", "not a JSON object"], obj=settings)
    assert by_reason.exit_code == 0 and "2 of 2 quarantined record(s)" in by_reason.stdout
    none = runner.invoke(cli, ["quarantine", "list", "--source", "file:/nowhere"], obj=settings)
    assert "0 of 0" in none.stdout
    record_id = listed["records"][1]["id"]
    shown = runner.invoke(cli, ["quarantine", "show", str(record_id)], obj=settings)
    assert shown.exit_code == 0
    assert "not a JSON object" in shown.stdout and shown.stdout.rstrip().endswith("42")
    missing = runner.invoke(cli, ["quarantine", "show", "999999"], obj=settings)
    assert missing.exit_code == 2 and "not found" in missing.output


def test_remote_list_and_show_talk_to_the_server(server: str, rejected: tuple[Settings, str]) -> None:
    settings, ingestion_id = rejected
    runner = CliRunner()
    base = ["quarantine", "--server", server, "--api-key", "k1"]
    listed = json.loads(
        runner.invoke(cli, [*base, "list", "--ingestion-id", ingestion_id, "--json"], obj=settings).stdout
    )
    assert [r["raw"] for r in listed["records"]] == ['"not a record"', "42"]
    record_id = listed["records"][0]["id"]
    shown = json.loads(runner.invoke(cli, [*base, "show", str(record_id), "--json"], obj=settings).stdout)
    assert shown == listed["records"][0]
    missing = runner.invoke(cli, [*base, "show", "999999"], obj=settings)
    assert missing.exit_code == 2 and "not found" in missing.output
    after = runner.invoke(cli, ["quarantine", "list", "--server", server, "--api-key", "k1"], obj=settings)
    assert after.exit_code == 0 and "2 of 2 quarantined record(s)" in after.stdout
    unauthorized = runner.invoke(cli, ["quarantine", "--server", server, "list"], obj=settings)
    assert unauthorized.exit_code == 2 and "FLYWHEEL_API_KEY" in unauthorized.output
