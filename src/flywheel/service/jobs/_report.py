"""A job's report and divergent samples, read from the store (the API, the CLI and the dashboard call these)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from sqlalchemy import Engine, and_, func, select

from flywheel.config import FlywheelConfig
from flywheel.pipeline.report import EVAL_TYPES, Price, ReportSettings, build_report
from flywheel.service.jobs._repository import JobRepository
from flywheel.store import evaluation_samples, evaluations, job_candidates, log_records

#: How many of a workload's most recent log records are looked at to name the teacher model.
_TEACHER_SAMPLE = 200


def teacher_model_from_logs(engine: Engine, workload_id: str, client_id: str) -> str | None:
    """The model most of the workload's recent logged requests name (``request.model``, else ``response.model``)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(log_records.c.data)
            .where(log_records.c.workload_id == workload_id, log_records.c.client_id == client_id)
            .order_by(log_records.c.timestamp.desc())
            .limit(_TEACHER_SAMPLE)
        ).scalars()
        names: Counter[str] = Counter()
        for data in rows:
            try:
                record = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            for part in ("request", "response"):
                section = record.get(part)
                model = section.get("model") if isinstance(section, dict) else None
                if isinstance(model, str) and model:
                    names[model] += 1
                    break
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
    JobRepository(engine).get_row(job_id)  # 404 for an unknown job
    conditions = [evaluations.c.job_id == job_id]
    if candidate is not None:
        conditions.append(job_candidates.c.model_name == candidate)
    if eval_type is not None:
        long_names = {v: k for k, v in EVAL_TYPES.items()}
        conditions.append(evaluations.c.eval_type == long_names.get(eval_type, eval_type))
    if max_score is not None:
        conditions.append(evaluation_samples.c.score <= max_score)
    if search:
        conditions.append(func.lower(evaluation_samples.c.sample).contains(search.lower(), autoescape=True))
    joined = evaluation_samples.join(
        evaluations, evaluation_samples.c.evaluation_id == evaluations.c.id
    ).join(job_candidates, evaluations.c.candidate_id == job_candidates.c.id)
    where = and_(*conditions)
    query = (
        select(
            job_candidates.c.model_name,
            evaluations.c.eval_type,
            evaluation_samples.c.position,
            evaluation_samples.c.score,
            evaluation_samples.c.sample,
        )
        .select_from(joined)
        .where(where)
        .order_by(
            evaluation_samples.c.score.is_(None),
            evaluation_samples.c.score,
            job_candidates.c.position,
            evaluations.c.eval_type,
            evaluation_samples.c.position,
        )
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(query))
        total = int(conn.scalar(select(func.count()).select_from(joined).where(where)) or 0)
    page = []
    for row in rows:
        sample = orjson.loads(row.sample)
        # the judge's prompt stays in the store (it repeats the whole exchange); the verdict is what a reviewer reads
        judge = [
            {k: t.get(k) for k in ("metric", "score", "explanation", "reply", "judge_model")}
            for t in sample.get("judge") or []
        ]
        page.append(
            {
                "candidate": row.model_name,
                "eval_type": EVAL_TYPES.get(row.eval_type, row.eval_type),
                "index": row.position,
                "record_id": sample.get("record_id"),
                "score": row.score,
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
