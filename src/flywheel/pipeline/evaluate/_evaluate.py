"""The evaluation entry point: teacher logs + candidate generations → scores with intervals and per-sample evidence.

``evaluate(eval_records, generations, workload_type, judge=None)`` is the one call the job runner and the CLI make.
Scores keep the reference's keys (classification ``f1_score``; tool calling ``function_name``,
``function_name_and_args_accuracy``, ``tool_calling_correctness``; generic ``similarity``) and add judge-free ones.
Every metric carries ``n`` and a seeded bootstrap interval; a metric that could not be computed (no judge, no grade
at all) says so with a reason instead of reporting a number.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from flywheel.backends._types import Generation
from flywheel.errors import DataError
from flywheel.pipeline.evaluate._answers import (
    Answer,
    answer_from_generation,
    detect_workload_type,
    prompt_messages,
    record_id,
    teacher_answer,
    teacher_usage,
)
from flywheel.pipeline.evaluate._classification import (
    ClassificationReport,
    classification_report,
    encode_labels,
    extract_label,
    macro_f1_codes,
    weighted_f1_codes,
)
from flywheel.pipeline.evaluate._judge import (
    Judge,
    JudgeItem,
    JudgeTranscript,
    SimilarityScorer,
    ToolCallCorrectnessScorer,
)
from flywheel.pipeline.evaluate._stats import Interval, bootstrap, bootstrap_mean, bootstrap_percentile
from flywheel.pipeline.evaluate._text import rouge_l, token_f1
from flywheel.pipeline.evaluate._tool_calling import (
    arguments_f1,
    calls_exact_match,
    function_name_match,
    normalize_calls,
)

logger = logging.getLogger(__name__)

WorkloadType = Literal["classification", "tool_calling", "generic"]
WORKLOAD_TYPES: tuple[str, ...] = ("classification", "tool_calling", "generic")

#: The metrics each workload reports, primary (reference) key first.
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("f1_score", "accuracy", "f1_weighted"),
    "tool_calling": (
        "function_name",
        "function_name_and_args_accuracy",
        "function_args_f1",
        "tool_calling_correctness",
    ),
    "generic": ("similarity", "rouge_l", "token_f1"),
}
#: Metrics that need an LLM judge.
JUDGE_METRICS = frozenset({"tool_calling_correctness", "similarity"})
#: Metrics that are the mean of a per-sample score (the others are corpus-level, recomputed on resamples).
_CORPUS_METRICS = frozenset({"f1_score", "f1_weighted"})

_PROMPT_EXCERPT = 500


# ----------------------------------------------------------------------------------------------------- results


@dataclass
class MetricResult:
    """One aggregate: value, the number of samples it rests on, and its bootstrap interval.

    ``status`` is ``"not_computed"`` (with ``reason``, and ``value``/``ci_*`` ``None``) when the metric could not be
    computed, e.g. no judge configured. ``no_grade`` counts samples a judge could not grade (excluded from ``n``).
    """

    name: str
    value: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float = 0.95
    status: Literal["computed", "not_computed"] = "computed"
    reason: str | None = None
    no_grade: int | None = None

    @classmethod
    def from_interval(cls, name: str, interval: Interval, confidence: float) -> MetricResult:
        """A computed metric from a bootstrap :class:`Interval`."""
        return cls(name, interval.value, interval.n, interval.ci_low, interval.ci_high, confidence)

    @classmethod
    def not_computed(cls, name: str, reason: str, confidence: float = 0.95) -> MetricResult:
        """A metric reported as not computed, with the reason."""
        return cls(name, None, 0, None, None, confidence, "not_computed", reason)

    def to_json(self) -> dict[str, Any]:
        """``{"value", "n", "ci_low", "ci_high", "confidence", "status", ["reason"], ["no_grade"]}``."""
        out: dict[str, Any] = {
            "value": self.value,
            "n": self.n,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": self.confidence,
            "status": self.status,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.no_grade is not None:
            out["no_grade"] = self.no_grade
        return out


@dataclass
class SampleEvidence:
    """What a reviewer needs to check one eval record: prompt reference, both answers, scores, judge transcript."""

    index: int
    record_id: str
    prompt_excerpt: str
    teacher: Answer
    candidate: Answer
    candidate_error: str | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    labels: dict[str, str | None] | None = None
    judge: list[JudgeTranscript] = field(default_factory=list)
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    teacher_prompt_tokens: int | None = None
    teacher_completion_tokens: int | None = None
    skipped_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON of every field (judge transcripts included)."""
        return {
            "index": self.index,
            "record_id": self.record_id,
            "prompt_excerpt": self.prompt_excerpt,
            "teacher": self.teacher.to_json(),
            "candidate": self.candidate.to_json(),
            "candidate_error": self.candidate_error,
            "scores": dict(self.scores),
            "labels": self.labels,
            "judge": [t.to_json() for t in self.judge],
            "latency_s": self.latency_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "teacher_prompt_tokens": self.teacher_prompt_tokens,
            "teacher_completion_tokens": self.teacher_completion_tokens,
            "skipped_reason": self.skipped_reason,
        }


@dataclass
class EvaluationResult:
    """Scores, usage aggregates, warnings and per-sample evidence of one evaluation."""

    workload_type: str
    metrics: dict[str, MetricResult]
    usage: dict[str, MetricResult]
    samples: list[SampleEvidence]
    classification: ClassificationReport | None = None
    warnings: list[str] = field(default_factory=list)
    judge_model: str | None = None
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    #: Wall time spent generating the candidate's answers (all batches), when the caller measured it.
    generation_seconds: float | None = None

    @property
    def scores(self) -> dict[str, float]:
        """Computed metric values keyed as the reference's job ``scores`` (not-computed metrics are absent)."""
        return {k: m.value for k, m in self.metrics.items() if m.status == "computed" and m.value is not None}

    @property
    def n_scored(self) -> int:
        """Samples that were scored (eval records minus skipped ones)."""
        return sum(1 for s in self.samples if s.skipped_reason is None)

    @property
    def candidate_errors(self) -> int:
        """Scored samples whose candidate generation failed (they count as wrong)."""
        return sum(1 for s in self.samples if s.skipped_reason is None and s.candidate_error)

    def throughput(self) -> dict[str, float | None]:
        """Measured generation throughput: ``{"generation_seconds", "requests_per_s"}`` (None when not timed)."""
        answered = sum(1 for s in self.samples if not s.candidate_error)
        seconds = self.generation_seconds
        rate = answered / seconds if seconds and answered else None
        return {"generation_seconds": seconds, "requests_per_s": rate}

    def to_json(self, include_samples: bool = True) -> dict[str, Any]:
        """The whole result as plain JSON (see the module docstring of ``flywheel.pipeline.evaluate``)."""
        out: dict[str, Any] = {
            "workload_type": self.workload_type,
            "n_records": len(self.samples),
            "n_scored": self.n_scored,
            "candidate_errors": self.candidate_errors,
            "skipped": [
                {"index": s.index, "record_id": s.record_id, "reason": s.skipped_reason}
                for s in self.samples
                if s.skipped_reason is not None
            ],
            "scores": self.scores,
            "metrics": {k: m.to_json() for k, m in self.metrics.items()},
            "usage": {k: m.to_json() for k, m in self.usage.items()},
            "classification": self.classification.to_json() if self.classification else None,
            "judge_model": self.judge_model,
            "warnings": list(self.warnings),
            "bootstrap": {
                "samples": self.bootstrap_samples,
                "confidence": self.confidence,
                "seed": self.seed,
            },
            "throughput": self.throughput(),
        }
        if include_samples:
            out["samples"] = [s.to_json() for s in self.samples]
        return out


# ----------------------------------------------------------------------------------------------------- evaluate


def _excerpt(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            text: str = message["content"]
            return text if len(text) <= _PROMPT_EXCERPT else text[: _PROMPT_EXCERPT - 1] + "…"
    return ""


def _mean_metric(
    name: str, samples: Sequence[SampleEvidence], *, n_boot: int, confidence: float, seed: int
) -> MetricResult:
    values = [s.scores[name] for s in samples if s.skipped_reason is None and s.scores.get(name) is not None]
    if not values:
        return MetricResult.not_computed(name, "no sample could be scored", confidence)
    interval = bootstrap_mean(
        [float(v) for v in values if v is not None], n_boot=n_boot, confidence=confidence, seed=seed
    )
    return MetricResult.from_interval(name, interval, confidence)


def _judge_metric(
    name: str,
    samples: Sequence[SampleEvidence],
    judge: Judge | None,
    no_judge_reason: str,
    *,
    n_boot: int,
    confidence: float,
    seed: int,
) -> MetricResult:
    if judge is None:
        return MetricResult.not_computed(name, no_judge_reason, confidence)
    scored = [s for s in samples if s.skipped_reason is None]
    no_grade = sum(1 for s in scored if s.scores.get(name) is None)
    result = _mean_metric(name, scored, n_boot=n_boot, confidence=confidence, seed=seed)
    if result.status == "not_computed" and scored:
        reasons = sorted(
            {
                t.explanation or "no grade"
                for s in scored
                for t in s.judge
                if t.metric == name and not t.graded
            }
        )
        result.reason = f"the judge gave no usable grade for any of {len(scored)} samples: " + "; ".join(
            reasons[:3]
        )
    result.no_grade = no_grade
    return result


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
    if workload_type not in WORKLOAD_TYPES:
        raise DataError(
            f"Unknown workload type {workload_type!r}; use one of auto, {', '.join(WORKLOAD_TYPES)}."
        )

    warnings: list[str] = []
    judge_model = judge.model_name if judge is not None else None
    needs_judge = any(m in JUDGE_METRICS for m in METRICS[workload_type])
    if (
        judge is not None
        and needs_judge
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
    metrics: dict[str, MetricResult] = {}
    report: ClassificationReport | None = None

    if workload_type == "classification":
        report, metrics = _classification(samples, **boot)
    elif workload_type == "tool_calling":
        _score_tool_calls(samples, eval_records, judge)
        for name in METRICS["tool_calling"]:
            if name in JUDGE_METRICS:
                metrics[name] = _judge_metric(name, samples, judge, no_judge_reason, **boot)
            else:
                metrics[name] = _mean_metric(name, samples, **boot)
    else:
        _score_generic(samples, eval_records, judge)
        for name in METRICS["generic"]:
            if name in JUDGE_METRICS:
                metrics[name] = _judge_metric(name, samples, judge, no_judge_reason, **boot)
            else:
                metrics[name] = _mean_metric(name, samples, **boot)

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
        judge_model=judge_model if needs_judge else None,
        bootstrap_samples=bootstrap_samples,
        confidence=confidence,
        seed=seed,
    )


# ----------------------------------------------------------------------------------------------------- workloads


def _classification(
    samples: list[SampleEvidence], *, n_boot: int, confidence: float, seed: int
) -> tuple[ClassificationReport, dict[str, MetricResult]]:
    for s in samples:
        teacher_label = extract_label(s.teacher.content)
        candidate_label = extract_label(s.candidate.content)
        s.labels = {"teacher": teacher_label, "candidate": candidate_label}
        if teacher_label is None:
            s.skipped_reason = "the teacher's answer has no label"
            continue
        s.scores["accuracy"] = 1.0 if candidate_label == teacher_label else 0.0
    scored = [s for s in samples if s.skipped_reason is None]
    teacher = [s.labels["teacher"] for s in scored if s.labels and s.labels["teacher"] is not None]
    candidate = [s.labels["candidate"] if s.labels else None for s in scored]
    report = classification_report(teacher, candidate)
    if not scored:
        reason = "no eval record has a teacher label"
        return report, {
            m: MetricResult.not_computed(m, reason, confidence) for m in METRICS["classification"]
        }
    metrics = {
        "f1_score": _labels_metric(
            "f1_score", teacher, candidate, n_boot=n_boot, confidence=confidence, seed=seed
        ),
        "accuracy": _mean_metric("accuracy", scored, n_boot=n_boot, confidence=confidence, seed=seed),
        "f1_weighted": _labels_metric(
            "f1_weighted", teacher, candidate, n_boot=n_boot, confidence=confidence, seed=seed
        ),
    }
    return report, metrics


def _labels_metric(
    name: str,
    teacher: Sequence[str],
    candidate: Sequence[str | None],
    *,
    n_boot: int,
    confidence: float,
    seed: int,
) -> MetricResult:
    labels, y_true, y_pred = encode_labels(teacher, candidate)
    k = len(labels)
    fn = macro_f1_codes if name == "f1_score" else weighted_f1_codes
    interval = bootstrap(
        lambda idx: fn(y_true[idx], y_pred[idx], k),
        len(teacher),
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
    )
    return MetricResult.from_interval(name, interval, confidence)


def _score_tool_calls(
    samples: list[SampleEvidence], records: Sequence[Mapping[str, Any]], judge: Judge | None
) -> None:
    to_judge: list[tuple[SampleEvidence, JudgeItem]] = []
    for s, record in zip(samples, records, strict=True):
        teacher = normalize_calls(s.teacher.tool_calls)
        candidate = normalize_calls(s.candidate.tool_calls)
        s.scores["function_name"] = function_name_match(teacher, candidate)
        s.scores["function_name_and_args_accuracy"] = calls_exact_match(teacher, candidate)
        s.scores["function_args_f1"] = arguments_f1(teacher, candidate)
        if judge is None:
            continue
        # Cases the judge's rules settle without asking it (saves calls; recorded as such in the transcript).
        decided: tuple[float, str] | None = None
        if not candidate:
            decided = (
                (1.0, "neither answer calls a tool")
                if not teacher
                else (0.0, "the candidate made no tool call")
            )
        elif s.scores["function_name_and_args_accuracy"] == 1.0:
            decided = (1.0, "the calls are identical after JSON normalisation")
        if decided is not None:
            s.scores["tool_calling_correctness"] = decided[0]
            s.judge.append(
                JudgeTranscript(
                    "tool_calling_correctness",
                    None,
                    None,
                    decided[0],
                    decided[0],
                    decided[1],
                    judge.model_name,
                    decided_without_judge=True,
                )
            )
            continue
        request = record.get("request") if isinstance(record.get("request"), Mapping) else {}
        assert isinstance(request, Mapping)
        tools = request.get("tools") if isinstance(request.get("tools"), list) else None
        to_judge.append((s, JudgeItem(prompt_messages(record), s.teacher, s.candidate, tools)))
    if judge is not None and to_judge:
        transcripts = judge.grade(ToolCallCorrectnessScorer(), [item for _, item in to_judge])
        for (s, _), transcript in zip(to_judge, transcripts, strict=True):
            s.judge.append(transcript)
            s.scores["tool_calling_correctness"] = transcript.score


def _score_generic(
    samples: list[SampleEvidence], records: Sequence[Mapping[str, Any]], judge: Judge | None
) -> None:
    to_judge: list[tuple[SampleEvidence, JudgeItem]] = []
    for s, record in zip(samples, records, strict=True):
        if not (s.teacher.content or "").strip():
            s.skipped_reason = "the teacher's answer is empty"
            continue
        s.scores["rouge_l"] = rouge_l(s.teacher.content, s.candidate.content)
        s.scores["token_f1"] = token_f1(s.teacher.content, s.candidate.content)
        if judge is None:
            continue
        if not (s.candidate.content or "").strip():
            # The rubric's bottom grade: "1 = irrelevant or empty"; no need to ask.
            s.scores["similarity"] = 0.1
            s.judge.append(
                JudgeTranscript(
                    "similarity",
                    None,
                    None,
                    0.1,
                    1.0,
                    "the candidate answer is empty",
                    judge.model_name,
                    decided_without_judge=True,
                )
            )
            continue
        to_judge.append((s, JudgeItem(prompt_messages(record), s.teacher, s.candidate)))
    if judge is not None and to_judge:
        transcripts = judge.grade(SimilarityScorer(), [item for _, item in to_judge])
        for (s, _), transcript in zip(to_judge, transcripts, strict=True):
            s.judge.append(transcript)
            s.scores["similarity"] = transcript.score


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
