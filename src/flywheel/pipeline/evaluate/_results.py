"""What an evaluation produces: per-metric aggregates with intervals, per-sample evidence, and the whole result.

Plain data with ``to_json``; the scoring that fills them lives in :mod:`flywheel.pipeline.evaluate._scorers` and
:mod:`flywheel.pipeline.evaluate._evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flywheel.pipeline.evaluate._answers import Answer
from flywheel.pipeline.evaluate._classification import ClassificationReport
from flywheel.pipeline.evaluate._judge import JudgeTranscript
from flywheel.pipeline.evaluate._stats import Interval


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


#: The per-sample scores that say how far a sample agrees with the teacher, in the order they are looked for (the
#: per-sample form of each workload's primary metric: classification, tool calling, generic with and without judge).
SAMPLE_SCORE_KEYS = ("accuracy", "function_name_and_args_accuracy", "similarity", "rouge_l")


def sample_score(sample: Mapping[str, Any]) -> float | None:
    """A stored sample's headline score (1 = agrees with the teacher), or None if it was not scored; used to sort
    and filter divergent samples."""
    scores = sample.get("scores") or {}
    for key in SAMPLE_SCORE_KEYS:
        if scores.get(key) is not None:
            return float(scores[key])
    return None
