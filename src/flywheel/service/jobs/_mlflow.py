"""Experiment tracking in MLflow (when ``mlflow_config.enabled``); never fails an evaluation.

One experiment per job (``{experiment_name_prefix}-{job_id}``), one MLflow run per candidate × evaluation with the
job's parameters, every score with its confidence interval and ``n``, the training loss curves (customized-eval
runs), and the dataset manifest and adapter as artifacts; and, when the job ends, a ``report`` run with the cost per
1M requests and saving of every evaluation, the recommendation as tags, and the report (JSON and Markdown).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.config import FlywheelConfig, MLflowConfig

if TYPE_CHECKING:
    from flywheel.service.jobs._repository import JobRepository
    from flywheel.service.jobs._rows import StepRow

log = logging.getLogger(__name__)


#: MLflow's HTTP defaults retry for minutes; a tracking server that is down must not stall every evaluation.
#: Users can still set these variables themselves.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def _client(config: MLflowConfig) -> Any:
    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=config.tracking_uri)


def experiment_name(config: MLflowConfig, job_id: str) -> str:
    return f"{config.experiment_name_prefix}-{job_id}"


def _experiment_id(client: Any, config: MLflowConfig, job_id: str) -> str:
    name = experiment_name(config, job_id)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = config.artifact_location
    if "://" not in location:
        location = Path(location).resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def log_evaluation(
    config: MLflowConfig,
    *,
    job_id: str,
    workload_id: str,
    candidate: str,
    eval_type: str,
    result: dict[str, Any],
    params: dict[str, Any],
    manifest_path: Path | None = None,
    training_curves: dict[str, list[list[float]]] | None = None,
    adapter_dir: Path | None = None,
) -> str | None:
    """Log one evaluation; return its MLflow URI, or None if tracking failed (logged, never raised)."""
    try:
        client = _client(config)
        experiment_id = _experiment_id(client, config, job_id)
        run = client.create_run(
            experiment_id,
            run_name=f"{candidate.replace('/', '_')}_{eval_type}",
            tags={
                "flywheel.job_id": job_id,
                "flywheel.workload_id": workload_id,
                "flywheel.eval_type": eval_type,
            },
        )
        run_id = run.info.run_id
        base_params = {
            "model": candidate,
            "eval_type": eval_type,
            "flywheel_run_id": job_id,
            "workload_id": workload_id,
            "workload_type": result.get("workload_type"),
            **params,
        }
        for key, value in base_params.items():
            client.log_param(run_id, key, str(value)[:500])
        for name, entry in {**(result.get("metrics") or {}), **(result.get("usage") or {})}.items():
            if not isinstance(entry, dict) or entry.get("value") is None:
                continue
            client.log_metric(run_id, name, float(entry["value"]))
            for bound in ("ci_low", "ci_high"):
                if entry.get(bound) is not None:
                    client.log_metric(run_id, f"{name}_{bound}", float(entry[bound]))
            if entry.get("n") is not None:
                client.log_metric(run_id, f"{name}_n", float(entry["n"]))
        for curve, points in (training_curves or {}).items():
            if not isinstance(points, list):
                continue
            for point in points:
                client.log_metric(run_id, curve, float(point[1]), step=int(point[0]))
        client.log_dict(run_id, {k: v for k, v in result.items() if k != "samples"}, "evaluation.json")
        if manifest_path is not None and manifest_path.is_file():
            client.log_artifact(run_id, str(manifest_path), "datasets")
        if adapter_dir is not None and adapter_dir.is_dir():
            client.log_artifacts(run_id, str(adapter_dir), "adapter")
        client.set_terminated(run_id)
        return f"{config.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    except Exception:
        log.exception(
            "MLflow logging failed for job %s (%s %s); the evaluation is unaffected",
            job_id,
            candidate,
            eval_type,
        )
        return None


def log_report(config: MLflowConfig, *, job_id: str, report: dict[str, Any]) -> str | None:
    """Log a finished job's report as its experiment's ``report`` run; return its URI (None on failure, logged)."""
    from flywheel.pipeline.report import render_markdown

    try:
        client = _client(config)
        experiment_id = _experiment_id(client, config, job_id)
        rec = report["recommendation"]
        run = client.create_run(
            experiment_id,
            run_name="report",
            tags={
                "flywheel.job_id": job_id,
                "flywheel.recommendation": rec["status"],
                "flywheel.recommended_candidate": str(rec.get("candidate") or ""),
                "flywheel.recommended_eval_type": str(rec.get("eval_type") or ""),
                "flywheel.cost_unit": str(report["cost_model"]["unit"]),
            },
        )
        run_id = run.info.run_id
        teacher_cost = report["teacher"]["cost"].get("value")
        if teacher_cost is not None:
            client.log_metric(run_id, "teacher/cost_per_1m_requests", float(teacher_cost))
        for candidate in report["candidates"]:
            for ev in candidate["evaluations"]:
                prefix = f"{candidate['model_name']}/{ev['eval_type']}"
                if ev["cost"].get("value") is not None:
                    client.log_metric(run_id, f"{prefix}/cost_per_1m_requests", float(ev["cost"]["value"]))
                if ev.get("saving_pct") is not None:
                    client.log_metric(run_id, f"{prefix}/saving_pct", float(ev["saving_pct"]))
        client.log_dict(run_id, report, "report.json")
        client.log_text(run_id, render_markdown(report), "report.md")
        client.set_terminated(run_id)
        return f"{config.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    except Exception:
        log.exception("MLflow logging of the report of job %s failed; the job is unaffected", job_id)
        return None


def track_evaluation(
    repo: JobRepository,
    config: FlywheelConfig,
    *,
    job_id: str,
    workload_id: str,
    step: StepRow,
    eval_id: str,
    result: dict[str, Any],
    manifest_path: Path,
    adapter_dir: Path | None,
) -> None:
    """Log a finished evaluation step with the job's parameters (and the loss curves of a customized eval), and
    keep its MLflow URI with the evaluation."""
    curves = None
    if adapter_dir is not None and step.candidate_id is not None:
        metrics = repo.customization_metrics(job_id, step.candidate_id)
        curves = {k: v for k, v in metrics.items() if k.endswith("loss")}
    uri = log_evaluation(
        config.mlflow_config,
        job_id=job_id,
        workload_id=workload_id,
        candidate=str(step.candidate),
        eval_type=step.kind.value,
        result=result,
        params={
            "epochs": config.training_config.epochs,
            "batch_size": config.training_config.batch_size,
            "learning_rate": config.training_config.learning_rate,
            "adapter_dim": config.lora_config.adapter_dim,
            "eval_size": config.data_split_config.eval_size,
        },
        manifest_path=manifest_path,
        training_curves=curves,
        adapter_dir=adapter_dir,
    )
    if uri is not None:
        repo.set_evaluation_mlflow_uri(eval_id, uri)


def track_report(repo: JobRepository, config: FlywheelConfig, job_id: str) -> None:
    """Log a finished job's report (never raises: tracking must not turn a finished job into a crashed runner)."""
    from flywheel.service.jobs._report import job_report

    try:
        report = job_report(repo.engine, job_id)
    except Exception:
        log.exception("could not build the report of job %s for MLflow", job_id)
    else:
        log_report(config.mlflow_config, job_id=job_id, report=report)


def delete_experiment(config: MLflowConfig, job_id: str) -> None:
    """Remove a job's experiment (on job deletion); failures are logged, not raised."""
    try:
        client = _client(config)
        existing = client.get_experiment_by_name(experiment_name(config, job_id))
        if existing is not None:
            client.delete_experiment(existing.experiment_id)
    except Exception:
        log.exception("could not delete the MLflow experiment of job %s", job_id)
