"""A run's report: scores with intervals, latency, tokens, cost against the teacher, and the recommendation.

``build_report`` is a pure function of a job's detail (the JSON of ``GET /api/jobs/{id}``) and a few settings, so the
CLI, the API, the dashboard and a notebook all show the same figures. Shape (every number says what it rests on)::

    {job_id, workload_id, client_id, status, workload_type, error, generated_at,
     primary_metric, thresholds, notes: [str],
     cost_model: {basis: "prices" | "parameters", unit: "USD" | "PFLOP", formulas: {...}},
     teacher: {model, parameters_b, prompt_tokens_mean, completion_tokens_mean, n, cost: Cost},
     candidates: [{model_name, status, error, parameters_b,
                   evaluations: [{eval_type, status, error, progress, n, metrics: {name: metric},
                                  usage: {latency_p50_s, latency_p95_s, prompt_tokens_mean, completion_tokens_mean:
                                          metric}, requests_per_s, cost: Cost, saving_pct, qualifies, shortfalls}],
                   customization: {status, progress, steps_completed, epochs_completed, train_loss, val_loss,
                                   best_val_loss, error} | null}],
     recommendation: {status: recommended | no_candidate | pending, candidate, eval_type, metric, score, ci_low,
                      ci_high, n, threshold, cost_per_1m_requests, saving_pct, message, near_miss, advice, next_step},
     dataset_stats, progress: {steps_total, steps_done, percent, running: [str]}}

``metric`` is ``{value, n, ci_low, ci_high, confidence, status[, reason]}``; ``Cost`` is ``{value, basis, unit,
formula, reason}``. Eval types are reported as ``base``, ``icl`` and ``customized`` (the job detail's
``base-eval`` / ``icl-eval`` / ``customized-eval``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flywheel.pipeline.report._cost import (
    FORMULAS,
    Cost,
    Price,
    Usage,
    choose_basis,
    estimate,
    parameters_from_name,
    saving_pct,
)
from flywheel.pipeline.report._recommend import primary_metric, recommend, shortfalls, thresholds_for

EVAL_TYPES = {"base-eval": "base", "icl-eval": "icl", "customized-eval": "customized"}


@dataclass(frozen=True)
class ReportSettings:
    """What a report needs besides the job detail (built from the job's config by the caller)."""

    min_score: float | Mapping[str, float] = 0.9
    prices: Mapping[str, Price] = field(default_factory=dict)
    teacher_model: str | None = None
    teacher_parameters_b: float | None = None
    #: Candidate model name → billions of parameters (None: read off the name).
    candidate_parameters: Mapping[str, float | None] = field(default_factory=dict)
    #: Candidate model name → whether LoRA fine-tuning is enabled for it (for advice).
    customization_enabled: Mapping[str, bool] = field(default_factory=dict)


def _metric_value(metric: Mapping[str, Any] | None, key: str = "value") -> float | None:
    if not metric or metric.get("status") != "computed":
        return None
    value = metric.get(key)
    return float(value) if value is not None else None


def _teacher_usage(detail: Mapping[str, Any]) -> tuple[Usage, int | None, bool]:
    """The teacher's logged token means (from the first evaluation that has them) and whether they were logged."""
    for nim in detail.get("nims", []):
        for ev in nim.get("evaluations", []):
            usage = ev.get("usage") or {}
            prompt = _metric_value(usage.get("teacher_prompt_tokens_mean"))
            completion = _metric_value(usage.get("teacher_completion_tokens_mean"))
            if prompt is not None and completion is not None:
                n = (usage.get("teacher_prompt_tokens_mean") or {}).get("n")
                return Usage(prompt, completion), n, True
    return Usage(None, None), None, False


def _candidate_usage(ev: Mapping[str, Any]) -> Usage:
    usage = ev.get("usage") or {}
    throughput = ev.get("throughput") or {}
    return Usage(
        _metric_value(usage.get("prompt_tokens_mean")),
        _metric_value(usage.get("completion_tokens_mean")),
        throughput.get("requests_per_s"),
    )


def _falling(curve: Sequence[Sequence[float]]) -> bool:
    """Whether a loss curve was still going down at its end (last point below the one before)."""
    return len(curve) >= 2 and curve[-1][1] < curve[-2][1] - 1e-4


def _customization(nim: Mapping[str, Any]) -> dict[str, Any] | None:
    customs = nim.get("customizations") or []
    if not customs:
        return None
    c = customs[-1]
    metrics = c.get("metrics") or {}
    val = metrics.get("val_loss") or []
    summary = metrics.get("summary") or {}
    return {
        "status": c.get("status"),
        "progress": c.get("progress"),
        "steps_completed": c.get("steps_completed"),
        "epochs_completed": c.get("epochs_completed"),
        "runtime_seconds": c.get("runtime_seconds"),
        "train_loss": metrics.get("train_loss") or [],
        "val_loss": val,
        "best_val_loss": summary.get("best_val_loss", min((v for _, v in val), default=None)),
        "stopped_early": metrics.get("stopped_early"),
        "customized_model": c.get("customized_model"),
        "error": c.get("error"),
    }


def _progress(detail: Mapping[str, Any]) -> dict[str, Any]:
    steps = detail.get("steps") or []
    done = sum(1 for s in steps if s.get("status") in ("completed", "failed", "cancelled"))
    partial = sum((s.get("progress") or 0.0) / 100.0 for s in steps if s.get("status") == "running")
    total = len(steps)
    return {
        "steps_total": total,
        "steps_done": done,
        "percent": 100.0 * (done + partial) / total if total else 0.0,
        "running": [s["name"] for s in steps if s.get("status") == "running"],
    }


def build_report(detail: Mapping[str, Any], settings: ReportSettings | None = None) -> dict[str, Any]:
    """The report of one job (see the module docstring for the shape)."""
    settings = settings or ReportSettings()
    workload_type = detail.get("workload_type")
    nims = list(detail.get("nims") or [])
    notes: list[str] = []

    computed = sorted(
        {
            name
            for nim in nims
            for ev in nim.get("evaluations", [])
            for name, m in (ev.get("metrics") or {}).items()
            if m.get("status") == "computed"
        }
    )
    all_metrics = sorted(
        {name for nim in nims for ev in nim.get("evaluations", []) for name in ev.get("metrics") or {}}
    )
    metric = primary_metric(workload_type, computed)
    thresholds, threshold_notes = thresholds_for(settings.min_score, all_metrics or [metric], metric)
    notes.extend(threshold_notes)

    # ---- cost basis, chosen once for everybody
    teacher_model = settings.teacher_model
    teacher_params = settings.teacher_parameters_b or parameters_from_name(teacher_model)
    candidate_usages = {
        nim["model_name"]: [
            _candidate_usage(ev) for ev in nim.get("evaluations", []) if ev.get("status") == "completed"
        ]
        for nim in nims
    }
    # Until an evaluation finishes there is no candidate cost to compare with: the teacher's is not estimated either,
    # and nothing is said about prices, sizes or token counts that were never needed (a failed job, a queued one).
    costed = any(candidate_usages.values())
    teacher_usage, teacher_n, teacher_logged = _teacher_usage(detail)
    if not teacher_logged:
        base_usages = (
            _candidate_usage(ev)
            for nim in nims
            for ev in nim.get("evaluations", [])
            if ev.get("eval_type") == "base-eval"
        )
        proxy = next((u for u in base_usages if u.tokens is not None), None)
        if proxy is not None:
            teacher_usage = Usage(proxy.prompt_tokens, proxy.completion_tokens)
            if costed:
                notes.append(
                    "The logs carry no token usage for the teacher; its cost assumes the token counts the "
                    "candidate measured in the base evaluation."
                )
    basis, basis_notes = choose_basis(teacher_model, teacher_usage, candidate_usages, settings.prices)
    teacher_cost = Cost(None, None, None, None)
    if costed:
        notes.extend(basis_notes)
        teacher_cost = estimate(
            basis,
            teacher_model or "teacher",
            teacher_params,
            settings.prices.get(teacher_model or ""),
            teacher_usage,
        )

    # ---- candidates
    candidates = []
    options = []
    sizes = {
        nim["model_name"]: settings.candidate_parameters.get(nim["model_name"])
        or parameters_from_name(nim["model_name"])
        for nim in nims
    }
    known_sizes = [s for s in sizes.values() if s is not None]
    for nim in nims:
        name = nim["model_name"]
        custom = _customization(nim)
        evaluations = []
        for ev in nim.get("evaluations", []):
            usage = _candidate_usage(ev)
            cost = estimate(basis, name, sizes[name], settings.prices.get(name), usage)
            saving = saving_pct(teacher_cost, cost)
            metrics = ev.get("metrics") or {}
            finished = ev.get("status") == "completed"
            misses = shortfalls(metrics, thresholds) if finished else [f"evaluation {ev.get('status')}"]
            eval_type = EVAL_TYPES.get(ev.get("eval_type", ""), ev.get("eval_type"))
            entry = {
                "eval_type": eval_type,
                "status": ev.get("status"),
                "error": ev.get("error"),
                "progress": ev.get("progress"),
                "n": ev.get("n"),
                "metrics": metrics,
                "usage": {
                    k: (ev.get("usage") or {}).get(k)
                    for k in (
                        "latency_p50_s",
                        "latency_p95_s",
                        "prompt_tokens_mean",
                        "completion_tokens_mean",
                    )
                },
                "requests_per_s": usage.requests_per_s,
                "cost": cost.to_json(),
                "saving_pct": saving,
                "qualifies": finished and not misses,
                "shortfalls": misses,
            }
            evaluations.append(entry)
            if finished:
                primary = metrics.get(metric) or {}
                options.append(
                    {
                        "candidate": name,
                        "eval_type": eval_type,
                        "score": _metric_value(primary),
                        "ci_low": _metric_value(primary, "ci_low"),
                        "ci_high": _metric_value(primary, "ci_high"),
                        "n": primary.get("n"),
                        "qualifies": entry["qualifies"],
                        "shortfalls": misses,
                        "cost_value": cost.value,
                        "saving_pct": saving,
                        "parameters_b": sizes[name],
                        "max_parameters_b": max(known_sizes) if known_sizes else None,
                        "customization_enabled": settings.customization_enabled.get(name, custom is not None),
                        "val_loss_falling": bool(custom and _falling(custom["val_loss"])),
                    }
                )
        candidates.append(
            {
                "model_name": name,
                "status": nim.get("status"),
                "error": nim.get("error"),
                "parameters_b": sizes[name],
                "evaluations": evaluations,
                "customization": custom,
            }
        )

    stats = detail.get("dataset_stats") or {}
    split_counts = {
        k: v.get("count", v) if isinstance(v, Mapping) else v for k, v in (stats.get("splits") or {}).items()
    }
    recommendation = recommend(
        options,
        job_id=detail["id"],
        job_status=detail.get("status", ""),
        metric=metric,
        thresholds=thresholds,
        dataset_counts={k: int(v) for k, v in split_counts.items() if isinstance(v, int | float)},
    )
    return {
        "job_id": detail["id"],
        "workload_id": detail.get("workload_id"),
        "client_id": detail.get("client_id"),
        "status": detail.get("status"),
        "workload_type": workload_type,
        "error": detail.get("error"),
        "started_at": detail.get("started_at"),
        "finished_at": detail.get("finished_at"),
        "generated_at": datetime.fromtimestamp(time.time(), UTC).replace(tzinfo=None).isoformat(),
        "primary_metric": metric,
        "thresholds": thresholds,
        "notes": notes,
        "cost_model": {
            "basis": basis,
            "unit": "USD" if basis == "prices" else "PFLOP",
            "formulas": dict(FORMULAS),
        },
        "teacher": {
            "model": teacher_model,
            "parameters_b": teacher_params,
            "prompt_tokens_mean": teacher_usage.prompt_tokens,
            "completion_tokens_mean": teacher_usage.completion_tokens,
            "usage_logged": teacher_logged,
            "n": teacher_n,
            "cost": teacher_cost.to_json(),
        },
        "candidates": candidates,
        "recommendation": recommendation,
        "dataset_stats": detail.get("dataset_stats"),
        "progress": _progress(detail),
    }
