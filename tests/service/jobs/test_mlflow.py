"""MLflow tracking against a real local tracking store (SQLite + file artifacts)."""

from __future__ import annotations

from pathlib import Path

from flywheel.service.jobs import remove_job
from scripted_jobs import Harness, classification_logs, job_config


def test_each_evaluation_is_an_mlflow_run_with_scores_intervals_curves_and_artifacts(
    harness: Harness, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = job_config(
        nims=[
            {"model_name": "tiny", "backend": "scripted", "customization_enabled": True, "parameters_b": 0.5}
        ],
        cost={"teacher_parameters_b": 70.0},
        mlflow_config={
            "enabled": True,
            "tracking_uri": tracking,
            "experiment_name_prefix": "fw-test",
            "artifact_location": str(tmp_path / "mlruns"),
        },
    )
    harness.ingest(classification_logs(60))
    job_id = harness.submit(config)
    assert harness.run(job_id) == "completed"
    detail = harness.repo.detail(job_id)
    uris = [e["mlflow_uri"] for e in detail["nims"][0]["evaluations"]]
    assert all(u and u.startswith(tracking) for u in uris)

    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name(f"fw-test-{job_id}")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"tiny_base-eval", "tiny_icl-eval", "tiny_customized-eval", "report"}
    base = runs["tiny_base-eval"]
    assert base.data.params["flywheel_run_id"] == job_id
    assert base.data.metrics["f1_score"] == detail["nims"][0]["evaluations"][0]["scores"]["f1_score"]
    assert {"f1_score_ci_low", "f1_score_ci_high", "f1_score_n"} <= set(base.data.metrics)
    tuned = runs["tiny_customized-eval"]
    assert len(client.get_metric_history(tuned.info.run_id, "train_loss")) >= 1
    artifacts = {a.path for a in client.list_artifacts(tuned.info.run_id)}
    assert {"datasets", "adapter", "evaluation.json"} <= artifacts

    report = runs["report"]
    assert (
        report.data.tags["flywheel.recommendation"] == "no_candidate"
    )  # the scripted candidate always says business
    assert report.data.tags["flywheel.cost_unit"] == "PFLOP"
    assert 0 < report.data.metrics["tiny/base/saving_pct"] < 100
    assert (
        report.data.metrics["teacher/cost_per_1m_requests"]
        > report.data.metrics["tiny/base/cost_per_1m_requests"]
    )
    assert {a.path for a in client.list_artifacts(report.info.run_id)} == {"report.json", "report.md"}

    remove_job(harness.repo, harness.home, job_id)
    assert client.get_experiment(experiment.experiment_id).lifecycle_stage == "deleted"


def test_a_broken_tracking_server_never_fails_the_evaluation(harness: Harness) -> None:
    config = job_config(mlflow_config={"enabled": True, "tracking_uri": "http://127.0.0.1:1"})
    harness.ingest(classification_logs(60))
    job_id = harness.submit(config)
    assert harness.run(job_id) == "completed"
    assert all(e["mlflow_uri"] is None for e in harness.repo.detail(job_id)["nims"][0]["evaluations"])
