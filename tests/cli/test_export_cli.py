"""`flywheel export`: a finished job's adapter with its model card, a summary on success, clean errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli.main import cli
from flywheel.config import Settings
from scripted_jobs import Harness, classification_logs, job_config

NAME = "smollm2-135m-instruct"


@pytest.fixture
def finished_job(sqlite_url: str, home: Path) -> Iterator[tuple[Settings, str]]:
    """Why: a completed job (scripted backends) whose candidate's adapter folder holds real PEFT file names."""
    harness = Harness(sqlite_url, home)
    harness.ingest(classification_logs(60))
    config = job_config(nims=[{"model_name": NAME, "backend": "local", "customization_enabled": True}])
    job_id = harness.submit(config)
    assert harness.run(job_id) == "completed"
    (adapter_dir,) = (home / "jobs" / job_id / "adapters").glob("*/adapter")
    (adapter_dir / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2}))
    (adapter_dir / "adapter_model.safetensors").write_bytes(b"\0" * 2048)
    env = {"FLYWHEEL_DATABASE_URL": sqlite_url, "FLYWHEEL_HOME": str(home)}
    yield Settings.from_env(config, None, env), job_id
    harness.engine.dispose()


def test_export_writes_the_adapter_and_prints_a_summary(
    finished_job: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, job_id = finished_job
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["export", job_id, "--candidate", NAME, "--out", str(out)], obj=settings)
    assert result.exit_code == 0, result.output
    assert f"Exported the LoRA adapter of {NAME} (job {job_id}) to {out}" in result.stdout
    assert "adapter_model.safetensors" in result.stdout and "2.0 KB" in result.stdout
    assert "4 files" in result.stdout
    assert (out / "README.md").is_file() and (out / "flywheel_export.json").is_file()


def test_export_json_lists_files_and_facts(finished_job: tuple[Settings, str], tmp_path: Path) -> None:
    settings, job_id = finished_job
    out = tmp_path / "out"
    args = ["export", job_id, "--candidate", NAME, "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, obj=settings)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["kind"] == "adapter"
    assert {f["path"] for f in body["files"]} == {
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "flywheel_export.json",
    }
    assert body["facts"]["job"]["id"] == job_id
    assert body["total_bytes"] == sum(p.stat().st_size for p in out.iterdir())


def test_export_errors_are_one_line_without_a_traceback(
    finished_job: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, job_id = finished_job
    runner = CliRunner()
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    refused = runner.invoke(cli, ["export", job_id, "--candidate", NAME, "--out", str(out)], obj=settings)
    assert refused.exit_code == 2
    assert "--force" in refused.output and "Traceback" not in refused.output
    forced = runner.invoke(
        cli, ["export", job_id, "--candidate", NAME, "--out", str(out), "--force"], obj=settings
    )
    assert forced.exit_code == 0, forced.output
    unknown = runner.invoke(
        cli, ["export", job_id, "--candidate", "x", "--out", str(tmp_path / "b")], obj=settings
    )
    assert unknown.exit_code == 2
    assert unknown.output.strip() == f"error: Job {job_id} has no candidate 'x'; its candidates are: {NAME}."
    merged = runner.invoke(
        cli,
        ["export", job_id, "--candidate", NAME, "--out", str(tmp_path / "m"), "--merged", "--dtype", "int8"],
        obj=settings,
    )
    assert merged.exit_code == 2 and "'int8' is not one of" in merged.output
