"""The evaluation entry point: teacher logs + candidate generations → scores with intervals and per-sample evidence.

``evaluate(eval_records, generations, workload_type, judge=None)`` is the one call the job runner and the CLI make.
Scores keep the reference's keys (classification ``f1_score``; tool calling ``function_name``,
``function_name_and_args_accuracy``, ``tool_calling_correctness``; generic ``similarity``) and add judge-free ones.
Every metric carries ``n`` and a seeded bootstrap interval; a metric that could not be computed (no judge, no grade
at all) says so with a reason instead of reporting a number. What each workload type scores, and how, is its
scorer's (:mod:`flywheel.pipeline.evaluate._scorers`); this module builds the per-sample evidence around it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flywheel.backends._types import Generation
from flywheel.errors import DataError
from flywheel.pipeline.evaluate._answers import (
    answer_from_generation,
    detect_workload_type,
    prompt_messages,
    record_id,
    teacher_answer,
    teacher_usage,
)
from flywheel.pipeline.evaluate._judge import Judge
from flywheel.pipeline.evaluate._results import EvaluationResult, MetricResult, SampleEvidence
from flywheel.pipeline.evaluate._scorers import JUDGE_METRICS, METRICS, SCORERS, WORKLOAD_TYPES
from flywheel.pipeline.evaluate._stats import bootstrap_mean, bootstrap_percentile

__all__ = [
    "JUDGE_METRICS",
    "METRICS",
    "WORKLOAD_TYPES",
    "EvaluationResult",
    "MetricResult",
    "SampleEvidence",
    "evaluate",
    "usage_metrics",
]

logger = logging.getLogger(__name__)

_PROMPT_EXCERPT = 500


# ----------------------------------------------------------------------------------------------------- evaluate


def _excerpt(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            text: str = message["content"]
            return text if len(text) <= _PROMPT_EXCERPT else text[: _PROMPT_EXCERPT - 1] + "…"
    return ""


def evaluate(
    eval_records: Sequence[Mapping[str, Any]],
    generations: Sequence[Generation],
    workload_type: str = "auto",
    judge: Judge | None = None,
    *,
    candidate_model: str | None = None,
    no_judge_reason: str = "no LLM judge configured (llm_judge_config is null)",
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> EvaluationResult:
    """Score a candidate's generations against the teacher's logged answers.

    Args:
        eval_records: Log records (``{"request": {"messages", "tools"?}, "response": ChatCompletion, ...}``).
        generations: One candidate :class:`~flywheel.backends.Generation` per record, in the same order. A failed
            generation (``error`` set) is scored as a wrong answer and counted in ``candidate_errors``.
        workload_type: ``classification``, ``tool_calling``, ``generic`` or ``auto`` (decided from the teacher's
            answers: any tool call → tool_calling; every answer has a ``[[label]]`` → classification; else generic).
        judge: The LLM judge for ``tool_calling_correctness`` / ``similarity``; ``None`` → those metrics are
            reported as not computed with ``no_judge_reason``.
        candidate_model: The model under test; a warning is added when the judge is the same model.
        bootstrap_samples, confidence, seed: The bootstrap behind every interval.

    Returns:
        An :class:`EvaluationResult`; ``result.scores`` is the reference-compatible ``{key: value}`` dict and
        ``result.to_json()`` the full report with ``n``/``ci_low``/``ci_high`` and per-sample evidence.
    """
    if len(eval_records) != len(generations):
        raise DataError(
            f"{len(eval_records)} eval records but {len(generations)} candidate generations; "
            "pass exactly one generation per record, in the same order."
        )
    if workload_type == "auto":
        workload_type = detect_workload_type(list(eval_records))
    scorer = SCORERS.get(workload_type)
    if scorer is None:
        raise DataError(
            f"Unknown workload type {workload_type!r}; use one of auto, {', '.join(WORKLOAD_TYPES)}."
        )

    warnings: list[str] = []
    judge_model = judge.model_name if judge is not None else None
    if (
        judge is not None
        and scorer.needs_judge
        and candidate_model
        and judge_model
        and judge_model == candidate_model
    ):
        message = (
            f"The judge model {judge_model!r} is also the model under test; its grades of its own answers are "
            "likely biased. Configure a different llm_judge_config.model_name."
        )
        logger.warning(message)
        warnings.append(message)

    samples: list[SampleEvidence] = []
    for i, (record, generation) in enumerate(zip(eval_records, generations, strict=True)):
        prompt = prompt_messages(record)
        t_prompt, t_completion = teacher_usage(record)
        samples.append(
            SampleEvidence(
                index=i,
                record_id=record_id(record, i),
                prompt_excerpt=_excerpt(prompt),
                teacher=teacher_answer(record),
                candidate=answer_from_generation(generation),
                candidate_error=generation.error,
                latency_s=generation.latency_s if generation.latency_s > 0 else None,
                prompt_tokens=generation.prompt_tokens or None,
                completion_tokens=generation.completion_tokens or None,
                teacher_prompt_tokens=t_prompt,
                teacher_completion_tokens=t_completion,
            )
        )

    boot: dict[str, Any] = {"n_boot": bootstrap_samples, "confidence": confidence, "seed": seed}
    metrics, report = scorer.score(samples, eval_records, judge, no_judge_reason=no_judge_reason, **boot)

    for name, metric in metrics.items():
        if metric.no_grade:
            warnings.append(f"{metric.no_grade} sample(s) got no usable grade from the judge for {name}.")

    return EvaluationResult(
        workload_type=workload_type,
        metrics=metrics,
        usage=usage_metrics(samples, **boot),
        samples=samples,
        classification=report,
        warnings=warnings,
        judge_model=judge_model if scorer.needs_judge else None,
        bootstrap_samples=bootstrap_samples,
        confidence=confidence,
        seed=seed,
    )


# ----------------------------------------------------------------------------------------------------- usage


def usage_metrics(
    samples: Sequence[SampleEvidence], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, MetricResult]:
    """Latency (p50/p95 seconds) and mean prompt/completion tokens of the candidate, and the teacher's logged
    token means, each with ``n`` and a bootstrap interval. Failed generations are left out."""
    ok = [s for s in samples if s.skipped_reason is None and not s.candidate_error]
    out: dict[str, MetricResult] = {}
    latencies = np.array([s.latency_s for s in ok if s.latency_s is not None], dtype=np.float64)
    for name, q in (("latency_p50_s", 50.0), ("latency_p95_s", 95.0)):
        if len(latencies) == 0:
            out[name] = MetricResult.not_computed(name, "no latency was measured", confidence)
            continue
        interval = bootstrap_percentile(latencies, q, n_boot=n_boot, confidence=confidence, seed=seed)
        out[name] = MetricResult.from_interval(name, interval, confidence)
    scored = [s for s in samples if s.skipped_reason is None]
    columns: list[tuple[str, Sequence[SampleEvidence], str]] = [
        ("prompt_tokens_mean", ok, "prompt_tokens"),
        ("completion_tokens_mean", ok, "completion_tokens"),
        ("teacher_prompt_tokens_mean", scored, "teacher_prompt_tokens"),
        ("teacher_completion_tokens_mean", scored, "teacher_completion_tokens"),
    ]
    for name, rows, attr in columns:
        values = [float(getattr(s, attr)) for s in rows if getattr(s, attr) is not None]
        if not values:
            out[name] = MetricResult.not_computed(name, "no token counts were reported", confidence)
            continue
        interval = bootstrap_mean(values, n_boot=n_boot, confidence=confidence, seed=seed)
        out[name] = MetricResult.from_interval(name, interval, confidence)
    return out
