"""Paired comparison of two candidates scored on the same eval set.

The difference is ``candidate − baseline`` on the records both results scored (matched by record id). The interval
resamples *records* and recomputes both sides on the same resample, so the noise the two share (easy and hard
records) cancels out; this interval is much narrower than comparing two separate intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flywheel.errors import DataError
from flywheel.pipeline.evaluate._classification import LABEL_STATISTICS, encode_labels
from flywheel.pipeline.evaluate._results import EvaluationResult, SampleEvidence
from flywheel.pipeline.evaluate._stats import Statistic, bootstrap, bootstrap_mean


@dataclass(frozen=True)
class Comparison:
    """``difference = candidate − baseline`` with its paired bootstrap interval over ``n`` shared records."""

    metric: str
    baseline: float
    candidate: float
    difference: float
    ci_low: float
    ci_high: float
    n: int
    confidence: float

    def to_json(self) -> dict[str, Any]:
        """Plain JSON of every field."""
        return {
            "metric": self.metric,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
            "confidence": self.confidence,
        }


def _paired_label_statistic(
    fn: Callable[[NDArray[np.int64], NDArray[np.int64], int], float],
    teacher: Sequence[str],
    baseline: Sequence[str | None],
    candidate: Sequence[str | None],
) -> tuple[Statistic, float]:
    """A resample statistic ``fn(candidate) − fn(baseline)`` and the baseline's full-set value."""
    labels, y_true, y_base = encode_labels(teacher, baseline)
    _, _, y_cand = encode_labels(teacher, candidate)
    k = len(labels)

    def statistic(idx: NDArray[np.int64]) -> float:
        return fn(y_true[idx], y_cand[idx], k) - fn(y_true[idx], y_base[idx], k)

    return statistic, fn(y_true, y_base, k)


def _by_id(result: EvaluationResult) -> dict[str, SampleEvidence]:
    return {s.record_id: s for s in result.samples if s.skipped_reason is None}


def compare(
    baseline: EvaluationResult,
    candidate: EvaluationResult,
    metrics: list[str] | None = None,
    *,
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Comparison]:
    """Paired differences for every metric both results computed (or the ``metrics`` named).

    Raises:
        DataError: the two results are of different workload types or share no scored record.
    """
    if baseline.workload_type != candidate.workload_type:
        raise DataError(
            f"Cannot compare a {baseline.workload_type} evaluation with a {candidate.workload_type} one."
        )
    a, b = _by_id(baseline), _by_id(candidate)
    shared = [rid for rid in a if rid in b]
    if not shared:
        raise DataError(
            "The two evaluations share no scored eval record; compare results on the same eval set."
        )
    names = metrics or [
        m
        for m, r in baseline.metrics.items()
        if r.status == "computed" and m in candidate.metrics and candidate.metrics[m].status == "computed"
    ]
    out: dict[str, Comparison] = {}
    for name in names:
        if name in LABEL_STATISTICS:
            teacher = [str((a[r].labels or {}).get("teacher")) for r in shared]
            base_labels = [(a[r].labels or {}).get("candidate") for r in shared]
            cand_labels = [(b[r].labels or {}).get("candidate") for r in shared]
            fn = LABEL_STATISTICS[name]
            statistic, base_value = _paired_label_statistic(fn, teacher, base_labels, cand_labels)
            interval = bootstrap(
                statistic, len(shared), n_boot=bootstrap_samples, confidence=confidence, seed=seed
            )
        else:
            pairs = [
                (a[r].scores.get(name), b[r].scores.get(name))
                for r in shared
                if a[r].scores.get(name) is not None and b[r].scores.get(name) is not None
            ]
            if not pairs:
                continue
            base = np.array([p[0] for p in pairs], dtype=np.float64)
            cand = np.array([p[1] for p in pairs], dtype=np.float64)
            interval = bootstrap_mean(
                (cand - base).tolist(), n_boot=bootstrap_samples, confidence=confidence, seed=seed
            )
            base_value = float(base.mean())
        out[name] = Comparison(
            metric=name,
            baseline=base_value,
            candidate=base_value + interval.value,
            difference=interval.value,
            ci_low=interval.ci_low,
            ci_high=interval.ci_high,
            n=interval.n,
            confidence=confidence,
        )
    return out
