"""A job's report and divergent samples, read from the store (the API, the CLI and the dashboard call these)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from flywheel.config import FlywheelConfig
from flywheel.pipeline.report import EVAL_TYPES, Price, ReportSettings, build_report
from flywheel.service.jobs._repository import JobRepository

#: How many of a workload's most recent log records are looked at to name the teacher model.
_TEACHER_SAMPLE = 200


def teacher_model_from_logs(engine: Engine, workload_id: str, client_id: str) -> str | None:
    """The model most of the workload's recent logged requests name (``request.model``, else ``response.model``)."""
    names = JobRepository(engine).logged_models(workload_id, client_id, recent=_TEACHER_SAMPLE)
    return names.most_common(1)[0][0] if names else None


def report_settings(config: FlywheelConfig, teacher_model: str | None) -> ReportSettings:
    """The report's settings from a job's effective configuration."""
    return ReportSettings(
        min_score=config.promotion.min_score,
        prices={
            name: Price(p.input_per_1m, p.output_per_1m, p.gpu_hour) for name, p in config.cost.prices.items()
        },
        teacher_model=config.cost.teacher_model or teacher_model,
        teacher_parameters_b=config.cost.teacher_parameters_b,
        candidate_parameters={n.model_name: n.parameters_b for n in config.nims},
        customization_enabled={n.model_name: n.customization_enabled for n in config.nims},
    )


def job_report(engine: Engine, job_id: str) -> dict[str, Any]:
    """The report of job ``job_id`` (see :func:`flywheel.pipeline.report.build_report`)."""
    repo = JobRepository(engine)
    detail = repo.detail(job_id)
    config = FlywheelConfig.model_validate(repo.job_config(job_id))
    teacher = None
    if config.cost.teacher_model is None:
        teacher = teacher_model_from_logs(engine, detail["workload_id"], detail["client_id"])
    return build_report(detail, report_settings(config, teacher))


def job_samples(
    engine: Engine,
    job_id: str,
    *,
    candidate: str | None = None,
    eval_type: str | None = None,
    max_score: float | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Per-sample evidence of a job's evaluations, lowest score first; returns (page, total matching).

    ``eval_type`` is ``base`` / ``icl`` / ``customized`` (or the detail's ``base-eval`` …); ``max_score`` keeps
    samples scoring at most that (``max_score=0.99`` → the divergent ones); ``search`` matches the prompt excerpt or
    either answer (case-insensitive substring).
    """
    long_names = {v: k for k, v in EVAL_TYPES.items()}
    rows, total = JobRepository(engine).samples(
        job_id,
        candidate=candidate,
        eval_type=long_names.get(eval_type, eval_type) if eval_type is not None else None,
        max_score=max_score,
        search=search,
        limit=limit,
        offset=offset,
    )
    page = []
    for row in rows:
        sample = row["sample"]
        # the judge's prompt stays in the store (it repeats the whole exchange); the verdict is what a reviewer reads
        judge = [
            {k: t.get(k) for k in ("metric", "score", "explanation", "reply", "judge_model")}
            for t in sample.get("judge") or []
        ]
        page.append(
            {
                "candidate": row["candidate"],
                "eval_type": EVAL_TYPES.get(row["eval_type"], row["eval_type"]),
                "index": row["position"],
                "record_id": sample.get("record_id"),
                "score": row["score"],
                "scores": sample.get("scores") or {},
                "labels": sample.get("labels"),
                "prompt_excerpt": sample.get("prompt_excerpt"),
                "teacher": sample.get("teacher"),
                "answer": sample.get("candidate"),
                "candidate_error": sample.get("candidate_error"),
                "judge": judge,
                "latency_s": sample.get("latency_s"),
            }
        )
    return page, total
