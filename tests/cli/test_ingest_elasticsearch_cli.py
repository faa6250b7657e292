"""`flywheel ingest --from-elasticsearch`: the CLI imports from a cluster and prints the counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli.main import cli
from pipeline.ingest.fake_elasticsearch import DOCS, FakeElasticsearch, serving


@pytest.fixture
def cluster_url() -> Iterator[str]:
    """Why: a fake cluster of its own on an ephemeral loopback port (no Elasticsearch server can run here)."""
    with serving(FakeElasticsearch({"logs": list(DOCS)})) as url:
        yield url


def test_cli_imports_from_elasticsearch_and_prints_counts(cluster_url: str, tmp_path: Path) -> None:
    url = cluster_url
    db = tmp_path / "cli.db"
    env = {"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_DATABASE_URL": f"sqlite:///{db}"}
    args = ["ingest", "--from-elasticsearch", url, "--index", "logs", "--workload-id", "wl-b", "--json"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["accepted"], counts["duplicates"], counts["quarantined"]) == (3, 0, 0)

    missing = CliRunner().invoke(cli, ["ingest", "--from-elasticsearch", url, "--index", "nope"], env=env)
    assert missing.exit_code == 2 and "index 'nope' does not exist" in missing.output
